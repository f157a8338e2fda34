"""BlockManager: exact block ids and free-queue order through allocate, append, fork,
copy-on-write, free, prefix hit and eviction (vLLM style), plus hypothesis property tests over
random operation sequences (no leak, no double free, ref counts == owners, cache consistency)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from longbow import _core

BM = _core.BlockManager


def test_allocate_append_free_order():
    bm = BM(8, 4)
    assert bm.free_queue() == [1, 2, 3, 4, 5, 6, 7]
    assert bm.allocate(3) == [1, 2, 3]
    assert bm.free_queue() == [4, 5, 6, 7] and bm.num_used == 3
    table = bm.ensure_capacity([1, 2, 3], 13)  # append: a 4th block for token 13
    assert table == [1, 2, 3, 4] and bm.free_queue() == [5, 6, 7]
    assert bm.ensure_capacity(table, 16) == table and bm.free_queue() == [5, 6, 7]
    assert bm.ensure_capacity(table, 100) is None and bm.free_queue() == [
        5,
        6,
        7,
    ]  # "no", unchanged
    assert bm.allocate(4) is None and bm.allocate(0) == []
    bm.release(table)  # tail first: the tail is evicted before the head
    assert bm.free_queue() == [5, 6, 7, 4, 3, 2, 1]
    assert bm.allocate(2) == [5, 6]
    assert [bm.ref_count(b) for b in range(8)] == [0, 0, 0, 0, 0, 1, 1, 0]


def test_double_free_and_bad_ids_change_nothing():
    bm = BM(6, 4)
    a = bm.allocate(2)
    with pytest.raises(RuntimeError, match=r"\[block_manager\] release"):
        bm.release([a[0], a[0]])
    assert [bm.ref_count(b) for b in a] == [1, 1]
    bm.release(a)
    with pytest.raises(RuntimeError, match="free"):
        bm.release([a[0]])
    with pytest.raises(RuntimeError, match="out of range"):
        bm.share([0])
    with pytest.raises(ValueError, match="block id"):
        bm.ref_count(6)
    with pytest.raises(ValueError, match="num_blocks"):
        BM(1, 4)
    assert bm.free_queue() == [3, 4, 5, 2, 1]


def test_fork_and_copy_on_write():
    bm = BM(8, 4)
    parent = bm.ensure_capacity([], 6)  # 6 tokens: block 2 holds 2 of 4
    assert parent == [1, 2]
    bm.share(parent)  # fork a child
    assert bm.ref_count(1) == 2 and bm.ref_count(2) == 2
    # The child writes token 6 into the shared, partly filled block 2: it gets a copy.
    child, copies = bm.prepare_write([1, 2], 6, 7)
    assert child == [1, 3] and copies == [(2, 3)]
    assert [bm.ref_count(b) for b in (1, 2, 3)] == [2, 1, 1]
    # The parent is now the only owner of block 2: it writes in place.
    assert bm.prepare_write(parent, 6, 7) == ([1, 2], [])
    # Writing across a block boundary grows the table, nothing to copy.
    assert bm.prepare_write(child, 7, 9) == ([1, 3, 4], [])
    assert bm.free_queue() == [5, 6, 7]
    bm.release([1, 3, 4])
    assert bm.free_queue() == [5, 6, 7, 4, 3] and bm.ref_count(1) == 1
    bm.release(parent)
    assert bm.free_queue() == [5, 6, 7, 4, 3, 2, 1] and bm.num_used == 0


def test_copy_on_write_refused_when_pool_is_empty():
    bm = BM(4, 4)
    t = bm.ensure_capacity([], 6)  # [1, 2]
    bm.share(t)
    assert bm.allocate(1) == [3]
    assert bm.prepare_write(t, 6, 7) is None  # a copy of block 2 needs a free block
    assert [bm.ref_count(b) for b in (1, 2, 3)] == [2, 2, 1]


def test_prefix_hit_and_eviction():
    bm = BM(8, 4)
    tokens = list(range(10))  # two full blocks + 2 tokens
    table = bm.ensure_capacity([], 10)
    assert table == [1, 2, 3]
    hashes = bm.cache_full_blocks(table, tokens, 6, [])  # only block 0 is full and computed
    assert hashes == [BM.hash_block(0, [0, 1, 2, 3])]
    hashes = bm.cache_full_blocks(table, tokens, 10, hashes)
    assert hashes[1] == BM.hash_block(hashes[0], [4, 5, 6, 7])
    assert [bm.block_hash(b) for b in table] == [hashes[0], hashes[1], None]
    assert bm.cached_block(hashes[1]) == 2 and bm.num_cached == 2
    bm.release(table)
    assert bm.free_queue() == [4, 5, 6, 7, 3, 2, 1]  # freed blocks keep their hashes

    # A new prompt sharing 8 tokens takes blocks 1 and 2 out of the free queue.
    other = list(range(8)) + [99, 98, 97]
    assert bm.match_prefix(other, len(other) - 1) == [1, 2]
    blocks, hit_hashes = bm.acquire_prefix(other, len(other) - 1)
    assert blocks == [1, 2] and hit_hashes == hashes
    assert bm.free_queue() == [4, 5, 6, 7, 3] and bm.ref_count(1) == 1
    # A second one shares them (ref 2); the whole prompt is never a hit (its last token must run).
    assert bm.acquire_prefix(list(range(8)), 7) == ([1], [hashes[0]])
    assert bm.ref_count(1) == 2 and bm.ref_count(2) == 1
    # Chained: the same second block after a different first block is not a hit.
    assert bm.match_prefix([9, 9, 9, 9, 4, 5, 6, 7, 0], 8) == []
    bm.release([1])
    bm.release([1, 2])
    assert bm.free_queue() == [4, 5, 6, 7, 3, 2, 1]

    # Eviction: allocation reaches the cached blocks only after the uncached ones (LRU).
    assert bm.allocate(5) == [4, 5, 6, 7, 3] and bm.num_evictions == 0
    assert bm.allocate(1) == [2]
    assert bm.block_hash(2) is None and bm.cached_block(hashes[1]) == -1 and bm.num_evictions == 1
    assert bm.match_prefix(other, 10) == [1]  # block 0's hash survives, the chain stops at block 1


def test_prefix_caching_off():
    bm = BM(8, 4, enable_prefix_caching=False)
    table = bm.ensure_capacity([], 8)
    assert bm.cache_full_blocks(table, list(range(8)), 8, []) == []
    bm.release(table)
    assert bm.match_prefix(list(range(9)), 8) == [] and bm.num_cached == 0


def test_duplicate_content_keeps_first_block_cached():
    bm = BM(8, 4)
    a = bm.ensure_capacity([], 4)
    b = bm.ensure_capacity([], 4)
    ha = bm.cache_full_blocks(a, [1, 2, 3, 4], 4, [])
    hb = bm.cache_full_blocks(b, [1, 2, 3, 4], 4, [])
    assert ha == hb and bm.cached_block(ha[0]) == a[0] and bm.block_hash(b[0]) is None


# ---- property tests -------------------------------------------------------------------------

BS = 4


class BlockManagerMachine(RuleBasedStateMachine):
    """Sequences prefill, decode, fork and free against a small pool. A model of the device
    memory records, for every slot written, the token prefix whose K/V it holds; every
    computed position of every live sequence must still hold its own prefix (so copy-on-write
    and prefix hits never expose someone else's K/V)."""

    def __init__(self):
        super().__init__()
        self.bm = BM(10, BS)
        self.seqs: dict[int, dict] = {}
        self.mem: dict[int, list] = {}
        self.next_id = 0

    def _write(self, seq, begin, end):
        got = self.bm.prepare_write(seq["table"], begin, end)
        if got is None:
            return False
        seq["table"], copies = got
        for src, dst in copies:
            self.mem[dst] = list(self.mem.get(src, [None] * BS))
        for p in range(begin, end):
            block = seq["table"][p // BS]
            self.mem.setdefault(block, [None] * BS)[p % BS] = tuple(seq["tokens"][: p + 1])
        seq["computed"] = end
        seq["hashes"] = self.bm.cache_full_blocks(seq["table"], seq["tokens"], end, seq["hashes"])
        return True

    @rule(tokens=st.lists(st.integers(0, 2), min_size=1, max_size=14))
    def add(self, tokens):
        blocks, hashes = self.bm.acquire_prefix(tokens, len(tokens) - 1)
        seq = {
            "tokens": list(tokens),
            "table": list(blocks),
            "hashes": list(hashes),
            "computed": len(blocks) * BS,
        }
        self._check_seq(seq)  # a prefix hit holds exactly this prompt's K/V
        if self._write(seq, seq["computed"], len(tokens)):
            self.seqs[self.next_id] = seq
            self.next_id += 1
        else:
            self.bm.release(seq["table"])  # not admitted

    @precondition(lambda self: self.seqs)
    @rule(data=st.data(), token=st.integers(0, 2))
    def decode(self, data, token):
        sid = data.draw(st.sampled_from(sorted(self.seqs)))
        seq = self.seqs[sid]
        seq["tokens"].append(token)
        if not self._write(seq, seq["computed"], seq["computed"] + 1):
            self.bm.release(seq["table"])  # preempted
            del self.seqs[sid]

    @precondition(lambda self: self.seqs)
    @rule(data=st.data())
    def fork(self, data):
        sid = data.draw(st.sampled_from(sorted(self.seqs)))
        src = self.seqs[sid]
        self.bm.share(src["table"])
        self.seqs[self.next_id] = {k: list(v) if isinstance(v, list) else v for k, v in src.items()}
        self.next_id += 1

    @precondition(lambda self: self.seqs)
    @rule(data=st.data())
    def free(self, data):
        sid = data.draw(st.sampled_from(sorted(self.seqs)))
        self.bm.release(self.seqs.pop(sid)["table"])

    def _check_seq(self, seq):
        for p in range(seq["computed"]):
            assert self.mem[seq["table"][p // BS]][p % BS] == tuple(seq["tokens"][: p + 1])

    @invariant()
    def consistent(self):
        owners = [0] * 10
        for seq in self.seqs.values():
            assert 0 not in seq["table"]
            assert len(seq["table"]) == -(-seq["computed"] // BS)
            for b in seq["table"]:
                owners[b] += 1
            self._check_seq(seq)
        assert [self.bm.ref_count(b) for b in range(10)] == owners
        free = self.bm.free_queue()
        assert len(free) == len(set(free)) == self.bm.num_free
        assert set(free) == {b for b in range(1, 10) if owners[b] == 0}
        for b in range(1, 10):
            h = self.bm.block_hash(b)
            if h is not None:
                assert self.bm.cached_block(h) == b
                # A cached block is full and holds the K/V of its hashed tokens.
                assert all(slot is not None for slot in self.mem[b])
                prefix = self.mem[b][BS - 1]
                chain = 0
                for i in range(len(prefix) // BS):
                    chain = BM.hash_block(chain, list(prefix[i * BS : (i + 1) * BS]))
                assert chain == h

    def teardown(self):
        for seq in self.seqs.values():
            self.bm.release(seq["table"])
        assert self.bm.num_free == 9 and self.bm.num_used == 0  # no leak


TestBlockManagerMachine = BlockManagerMachine.TestCase
TestBlockManagerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
