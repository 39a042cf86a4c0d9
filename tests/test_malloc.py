import platform

from liverec.malloc import tune_malloc


def test_tune_malloc_sets_the_threshold_on_glibc() -> None:
    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")
