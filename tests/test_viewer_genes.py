"""scconcepts.genes: the ribosomal / mitochondrial / housekeeping flags the viewer shows."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scconcepts import genes


@pytest.mark.parametrize("gene, flag", [
    # cytoplasmic and mitochondrial ribosomal proteins
    ("RPL13A", "ribosomal"), ("RPS27", "ribosomal"), ("RPLP0", "ribosomal"),
    ("RPSA", "ribosomal"), ("RPS4Y1", "ribosomal"), ("RPL7L1", "ribosomal"),
    ("MRPL13", "ribosomal"), ("MRPS12", "ribosomal"), ("Rpl13a", "ribosomal"),
    # symbols that start like one but are not ribosomal proteins
    ("RPS6KA1", ""), ("RPS6KB1", ""), ("RPL13AP5", ""), ("RPSAP58", ""), ("RPLP0P6", ""),
    ("MRPL42P5", ""), ("RPS19BP1", ""),
    # mitochondrial genome (human and mouse)
    ("MT-CO1", "mitochondrial"), ("MT-ND4", "mitochondrial"), ("mt-Co1", "mitochondrial"),
    ("MTOR", ""), ("MT1X", ""),
    # the cited housekeeping lists
    ("GAPDH", "housekeeping"), ("ACTB", "housekeeping"), ("VCP", "housekeeping"),
    ("C1orf43", "housekeeping"), ("MALAT1", "housekeeping"), ("TPT1", "housekeeping"),
    # cell-type markers are not flagged
    ("CD74", ""), ("NKG7", ""), ("HLA-B", ""), ("LYZ", ""), ("MS4A1", ""),
])
def test_gene_flag(gene, flag):
    assert genes.gene_flag(gene) == flag


def test_gene_flags_and_summary():
    top = ["RPL13A", "MT-CO1", "CD74", "GAPDH", "RPS27", "LYZ"]
    assert genes.gene_flags(top) == ["ribosomal", "mitochondrial", "", "housekeeping",
                                     "ribosomal", ""]
    assert genes.flag_summary(top, top=5) == {"ribosomal": 2, "mitochondrial": 1,
                                              "housekeeping": 1, "any": 4}
    assert genes.flag_summary(["CD74"]) == {"ribosomal": 0, "mitochondrial": 0,
                                            "housekeeping": 0, "any": 0}


def test_ubiquitous_list_is_what_the_bundled_pbmc_data_say():
    """UBIQUITOUS_PBMC is its documented rule applied to the bundled 10x PBMC 4k data: the
    genes among the 60 highest mean expression shares, without RP*, MT- and HLA- genes."""
    import scipy.sparse as sp

    from scconcepts.data import load_dataset

    a = load_dataset("pbmc4k_10x")
    x = sp.csr_matrix(a.X)
    share = np.asarray((sp.diags(1.0 / np.asarray(x.sum(1)).ravel()) @ x).mean(0)).ravel()
    top = [a.var_names[i] for i in np.argsort(-share)[:60]]
    expected = {g for g in top if not re.match(r"^(M?RP[LS]|MT-|HLA-)", g)}
    assert expected == set(genes.UBIQUITOUS_PBMC)
    assert genes.HOUSEKEEPING >= {g.upper() for g in genes.EISENBERG_LEVANON_2013}
