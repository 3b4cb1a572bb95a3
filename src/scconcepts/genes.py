"""Flags for genes that dominate attribution rankings without saying much about a cell's identity.

Ribosomal-protein, mitochondrial and housekeeping genes are expressed in every cell, at high
counts; a gene attribution that occludes raw counts often ranks them first (chapter 04), and a
GSEA over such a ranking returns "Cytoplasmic Translation". :func:`gene_flags` marks them so
that a reader (the expert viewer, the chapters' tables) sees at a glance how much of a top-gene
list they make up; :func:`flag_summary` counts them.

Sources of the flags:

* ``ribosomal``: cytoplasmic ribosomal proteins (HGNC symbols ``RPL*``, ``RPS*``, ``RPLP0-2``,
  ``RPSA``) and mitochondrial ribosomal proteins (``MRPL*``, ``MRPS*``), by symbol pattern;
  ribosomal protein S6 kinases (``RPS6K*``) and processed pseudogenes (``RPL13AP5``, ``RPSAP58``)
  are not flagged.
* ``mitochondrial``: genes of the mitochondrial genome (``MT-*``; mouse ``mt-*``).
* ``housekeeping``: a short, cited list, **not** a complete housekeeping catalogue:
  :data:`EISENBERG_LEVANON_2013` (the 11 "highly uniform and strongly expressed" genes of their
  Table 1, a subset of their 3,804 housekeeping genes; Eisenberg & Levanon 2013, Trends Genet
  29:569), :data:`CLASSICAL_REFERENCE` (the classical qPCR reference genes evaluated by geNorm,
  Vandesompele et al. 2002, Genome Biol 3:research0034; their RPL13A is flagged ribosomal), and
  :data:`UBIQUITOUS_PBMC` (the non-ribosomal, non-mitochondrial, non-MHC genes among the 60 genes
  with the highest mean expression share in the bundled 10x PBMC 4k data; ``tests/test_genes.py``
  recomputes it).
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["FLAGS", "EISENBERG_LEVANON_2013", "CLASSICAL_REFERENCE", "UBIQUITOUS_PBMC",
           "HOUSEKEEPING", "gene_flag", "gene_flags", "flag_summary"]

#: Flag names, in the order a legend lists them ("" means not flagged).
FLAGS = ("ribosomal", "mitochondrial", "housekeeping")

#: Eisenberg & Levanon (2013), Table 1: the 11 genes with uniform, strong expression in 16 tissues.
EISENBERG_LEVANON_2013 = frozenset({
    "C1orf43", "CHMP2A", "EMC7", "GPI", "PSMB2", "PSMB4", "RAB7A", "REEP5", "SNRPD3", "VCP",
    "VPS29"})
#: Vandesompele et al. (2002): the classical reference genes geNorm ranked (RPL13A left out: it
#: is flagged ribosomal; GAPD is today's GAPDH).
CLASSICAL_REFERENCE = frozenset({
    "ACTB", "B2M", "GAPDH", "HMBS", "HPRT1", "SDHA", "TBP", "UBC", "YWHAZ"})
#: Top-60 mean expression share of the bundled pbmc4k_10x data, without RP*/MT-*/HLA-* genes.
UBIQUITOUS_PBMC = frozenset({
    "MALAT1", "TMSB4X", "B2M", "EEF1A1", "ACTB", "FTL", "TMSB10", "TPT1", "FTH1"})
#: Every gene flagged ``housekeeping`` (upper-case symbols).
HOUSEKEEPING = frozenset(g.upper() for g in
                         EISENBERG_LEVANON_2013 | CLASSICAL_REFERENCE | UBIQUITOUS_PBMC)

_RIBOSOMAL = re.compile(r"^M?RP[LS]", re.I)
# not ribosomal proteins although their symbols start like one
_NOT_RIBOSOMAL = re.compile(r"^RPS6K"                               # S6 kinases
                            r"|^M?RP[LS](\d+[A-Z]?\d*|A|P[0-2])P\d+$",  # pseudogenes
                            re.I)
_MITO = re.compile(r"^MT-", re.I)


def gene_flag(gene: str) -> str:
    """The flag of one gene symbol: one of :data:`FLAGS`, or ``""``.

    Examples
    --------
    >>> [gene_flag(g) for g in ("RPL13A", "MRPS12", "MT-CO1", "GAPDH", "RPS6KA1", "CD74")]
    ['ribosomal', 'ribosomal', 'mitochondrial', 'housekeeping', '', '']
    """
    g = str(gene)
    if _MITO.match(g):
        return "mitochondrial"
    if _RIBOSOMAL.match(g) and not _NOT_RIBOSOMAL.match(g):
        return "ribosomal"
    if g.upper() in HOUSEKEEPING:
        return "housekeeping"
    return ""


def gene_flags(genes: Iterable[str]) -> list[str]:
    """:func:`gene_flag` of each symbol, in order.

    Parameters
    ----------
    genes
        Gene symbols (human HGNC; mouse symbols are matched case-insensitively), length n.

    Returns
    -------
    list of str
        Length n: ``"ribosomal"``, ``"mitochondrial"``, ``"housekeeping"`` or ``""``.
    """
    return [gene_flag(g) for g in genes]


def flag_summary(genes: Iterable[str], top: int = 10) -> dict[str, int]:
    """How many of the first ``top`` genes carry each flag.

    Returns
    -------
    dict
        Flag → count (flags with a zero count included), and ``"any"``: genes with a flag.
    """
    flags = gene_flags(list(genes)[:int(top)])
    out = {f: flags.count(f) for f in FLAGS}
    out["any"] = sum(out.values())
    return out
