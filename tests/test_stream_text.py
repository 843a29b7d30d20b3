"""Stream text as a terminal shows it (`kernels.outputs.remove_overwritten`): the shortcut
for text without carriage returns or backspaces (a flood's 256 KiB chunks) must give what
the full rewrite gives, for any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gitrtc.kernels.outputs import remove_overwritten, terminal_text

TEXT = st.text(alphabet=st.sampled_from(["a", "b", "é", "\n", "\r", "\x08", " "]), max_size=60)


@given(TEXT)
def test_the_shortcut_gives_what_the_full_rewrite_gives(text: str) -> None:
    assert remove_overwritten(text) == terminal_text(text)


def test_progress_bars_and_backspaces_are_rewritten() -> None:
    assert remove_overwritten("10%\r20%\r30%\n") == "30%\n"
    assert remove_overwritten("abc\x08d\n") == "abd\n"
    assert remove_overwritten("done\r") == "done\r"  # the next chunk overwrites it
    plain = "".join(f"{i}\n" for i in range(1000))
    assert remove_overwritten(plain) == plain
