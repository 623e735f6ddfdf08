"""How checks are grouped into messages (no broker: the split itself)."""

from __future__ import annotations

from tasks.dispatch import TAIL_ALONE, messages


def test_soe_files_go_four_to_a_message_but_the_batch_ends_one_to_a_message():
    ids = list(range(1, 451))

    sent = messages("soe", ids)

    assert [i for group in sent for i in group] == ids  # each once, in order
    sizes = [len(group) for group in sent]
    assert sizes == [4] * 80 + [1] * 130  # whole groups of four, then the last 128 (and 2 more) alone
    assert TAIL_ALONE == 128


def test_a_write_with_more_to_follow_is_grouped_whole():
    sent = messages("soe", list(range(500)), more_follow=True)

    assert [len(group) for group in sent] == [4] * 125


def test_small_sends_and_hand_backs_go_alone_and_moderation_keeps_its_batches():
    assert messages("soe", list(range(10))) == [[i] for i in range(10)]  # fewer than 64: every thread gets one
    assert messages("soe", list(range(300)), alone=True) == [[i] for i in range(300)]
    assert [len(group) for group in messages("shumei", list(range(25)))] == [10, 10, 5]
    assert [len(group) for group in messages("gme", list(range(250)))] == [100, 100, 50]
