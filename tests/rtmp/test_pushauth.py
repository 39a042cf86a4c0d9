"""Push admission: stream names follow the one rule (media.names), refused as BadName."""

from __future__ import annotations

import pytest

from liverec.errors import RefusedError
from liverec.media.names import stream_name_problem
from liverec.rtmp.pushauth import BAD_NAME, check_stream_name


@pytest.mark.parametrize("name", ["cam1", "A-b_c.d", "x" * 128])
def test_good_names_pass(name: str) -> None:
    assert check_stream_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 129, "a b", "a/b", "a\u2028b"])
def test_bad_names_are_refused_with_the_rules_words(name: str) -> None:
    with pytest.raises(RefusedError) as caught:
        check_stream_name(name)
    assert caught.value.code == BAD_NAME
    assert caught.value.description == stream_name_problem(name)
