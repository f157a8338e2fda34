"""Per-sample bookkeeping: stop strings completed only by the text flushed at the end."""

from longbow.outputs import SampleState
from longbow.sampling import SamplingParams


class PieceTokenizer:
    """Decodes ids by concatenating fixed pieces; a piece ending in U+FFFD is an unfinished char."""

    pieces = {1: "ab", 2: "c\ufffd", 3: "d"}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.pieces[i] for i in ids)


def test_stop_string_completed_by_final_flush_reports_stop():
    s = SampleState(0, [], SamplingParams(max_tokens=2, stop=["bc"]), PieceTokenizer())
    emitted = s.on_token(1, -0.1, False, "", 0.0)[0]
    emitted += s.on_token(2, -0.1, True, "length", 0.0)[0]
    assert s.finish_reason == "stop"
    assert s.text == emitted == "a"


def test_length_finish_without_stop_keeps_reason_and_text():
    s = SampleState(0, [], SamplingParams(max_tokens=2, stop=["zz"]), PieceTokenizer())
    s.on_token(1, -0.1, False, "", 0.0)
    s.on_token(3, -0.1, True, "length", 0.0)
    assert s.finish_reason == "length" and s.text == "abd"
