"""Chat records of one official account, kept compact enough for millions of rows.

A record is (time, opercode, worker, openid, text). Records live in parallel
``array`` columns plus one list of text references, so a million records cost
roughly 30 MB instead of the ~400 MB a list of dicts would. Worker accounts and
openids are interned into small tables and stored as indexes.

Ids are positions: record ``i`` (1-based) is ``columns[i - 1]``. The store keeps
the columns sorted by time (stable, so equal times keep insertion order); that is
what makes WeChat's paging rule — "ids ascend, ``id >= msgid`` within
``[starttime, endtime]``" — a pair of bisections. Records that arrive out of time
order (historical backfill behind live data, or a clock moved backwards) mark the
store unsorted and the next read re-sorts and therefore renumbers; WeChat's ids
also follow time, so this is the faithful choice.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any


class RecordStore:
    def __init__(self) -> None:
        self._times = array("q")
        self._opercodes = array("H")
        self._workers = array("I")
        self._openids = array("I")
        self._texts: list[str] = []
        self._worker_names: list[str] = []
        self._worker_index: dict[str, int] = {}
        self._openid_names: list[str] = []
        self._openid_index: dict[str, int] = {}
        self._sorted = True

    def __len__(self) -> int:
        return len(self._times)

    def _intern(self, names: list[str], index: dict[str, int], name: str) -> int:
        found = index.get(name)
        if found is None:
            found = len(names)
            names.append(name)
            index[name] = found
        return found

    def append(self, *, time: int, opercode: int, worker: str, openid: str, text: str) -> int:
        """Add one record; returns its id (final unless older records arrive later)."""
        if self._times and time < self._times[-1]:
            self._sorted = False
        self._times.append(time)
        self._opercodes.append(opercode)
        self._workers.append(self._intern(self._worker_names, self._worker_index, worker))
        self._openids.append(self._intern(self._openid_names, self._openid_index, openid))
        self._texts.append(text)
        return len(self._times)

    def extend(
        self,
        *,
        times: Sequence[int],
        opercodes: Sequence[int],
        worker_idx: Sequence[int],
        worker_names: Sequence[str],
        openid_idx: Sequence[int],
        openid_names: Sequence[str],
        texts: Sequence[str],
    ) -> None:
        """Bulk insert; ``worker_idx``/``openid_idx`` index into the given name lists.

        Taking indexes rather than strings lets a generator produce a million rows
        without a million dict lookups here.
        """
        n = len(times)
        if not (len(opercodes) == len(worker_idx) == len(openid_idx) == len(texts) == n):
            raise ValueError("record columns differ in length")
        if n == 0:
            return
        wmap = [self._intern(self._worker_names, self._worker_index, w) for w in worker_names]
        omap = [self._intern(self._openid_names, self._openid_index, o) for o in openid_names]
        new_times = (
            times if isinstance(times, array) and times.typecode == "q" else array("q", times)
        )
        in_order = all(a <= b for a, b in zip(new_times, new_times[1:], strict=False))
        if not in_order or (self._times and new_times[0] < self._times[-1]):
            self._sorted = False
        self._times.extend(new_times)
        self._opercodes.extend(opercodes if isinstance(opercodes, array) else array("H", opercodes))
        self._workers.extend(array("I", map(wmap.__getitem__, worker_idx)))
        self._openids.extend(array("I", map(omap.__getitem__, openid_idx)))
        self._texts.extend(texts)

    def _ensure_sorted(self) -> None:
        if self._sorted:
            return
        # sorted() is stable, so records with equal times keep their arrival order.
        order = sorted(range(len(self._times)), key=self._times.__getitem__)
        self._times = array("q", map(self._times.__getitem__, order))
        self._opercodes = array("H", map(self._opercodes.__getitem__, order))
        self._workers = array("I", map(self._workers.__getitem__, order))
        self._openids = array("I", map(self._openids.__getitem__, order))
        self._texts = list(map(self._texts.__getitem__, order))
        self._sorted = True

    def _bounds(self, start: int | None, end: int | None) -> tuple[int, int]:
        lo = 0 if start is None else bisect_left(self._times, start)
        hi = len(self._times) if end is None else bisect_right(self._times, end)
        return lo, hi

    def query(
        self, *, starttime: int, endtime: int, msgid: int, number: int
    ) -> tuple[list[dict[str, Any]], int]:
        """WeChat's getmsglist: records with id >= msgid in [starttime, endtime], ascending.

        Returns the page and the msgid to continue from (last id + 1, or the given
        msgid when the page is empty).
        """
        self._ensure_sorted()
        lo, hi = self._bounds(starttime, endtime)
        first = max(lo, msgid - 1)
        stop = min(hi, first + number)
        if first >= stop:
            return [], msgid
        wn = self._worker_names
        on = self._openid_names
        rows = [
            {"worker": wn[w], "openid": on[o], "opercode": c, "text": x, "time": t}
            for w, o, c, x, t in zip(
                self._workers[first:stop],
                self._openids[first:stop],
                self._opercodes[first:stop],
                self._texts[first:stop],
                self._times[first:stop],
                strict=True,
            )
        ]
        return rows, stop + 1

    def dump(
        self,
        *,
        start: int | None = None,
        end: int | None = None,
        after_id: int = 0,
        limit: int = 1000,
        openid: str | None = None,
        opercode: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records with their ids, for tests and the control API (optionally filtered)."""
        self._ensure_sorted()
        lo, hi = self._bounds(start, end)
        i = max(lo, after_id)
        want_openid = self._openid_index.get(openid, -1) if openid is not None else None
        out: list[dict[str, Any]] = []
        while i < hi and len(out) < limit:
            if (want_openid is None or self._openids[i] == want_openid) and (
                opercode is None or self._opercodes[i] == opercode
            ):
                out.append(
                    {
                        "id": i + 1,
                        "worker": self._worker_names[self._workers[i]],
                        "openid": self._openid_names[self._openids[i]],
                        "opercode": self._opercodes[i],
                        "text": self._texts[i],
                        "time": self._times[i],
                    }
                )
            i += 1
        return out

    def count(self, *, start: int | None = None, end: int | None = None) -> int:
        self._ensure_sorted()
        lo, hi = self._bounds(start, end)
        return max(0, hi - lo)

    def is_time_ordered(self) -> bool:
        """True when ids ascend with time (always, after any read); for tests."""
        self._ensure_sorted()
        t = self._times
        return all(a <= b for a, b in zip(t, t[1:], strict=False))

    def time_range(self) -> tuple[int, int] | None:
        self._ensure_sorted()
        if not self._times:
            return None
        return self._times[0], self._times[-1]
