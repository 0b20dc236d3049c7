"""bench/polling.py's browser: which elements of a page poll, and what a swap brings."""

from __future__ import annotations

from bench.polling import live_regions, region_in

PAGE = b"""<html><body>
<div id="alerts" hidden hx-get="/alerts/" hx-trigger="load, every 5s" hx-swap="outerHTML"></div>
<section id="open-sessions"
  hx-get="/queue/?agent=7&amp;v=3" hx-trigger="every 5s, sessionsChanged from:body" hx-swap="outerHTML">
  <ul><li>a &gt; b</li></ul>
</section>
<div id="fast" hx-get="/outbound/1/" hx-trigger="every 500ms"></div>
<div hx-get="/no-id/" hx-trigger="every 5s"></div>
<div id="not-polled" hx-get="/x/" hx-trigger="sessionsChanged from:body"></div>
<form id="posted" hx-post="/send/" hx-trigger="every 5s"></form>
</body></html>"""


def test_every_element_with_an_id_a_get_and_a_timer_is_a_live_region():
    assert live_regions(PAGE) == [
        ("alerts", "/alerts/", 5.0),
        ("open-sessions", "/queue/?agent=7&v=3", 5.0),  # entities decoded
        ("fast", "/outbound/1/", 0.5),  # htmx's units
    ]


def test_a_swap_takes_the_returned_elements_url_and_timer():
    answer = b'<section id="open-sessions" hx-get="/queue/?v=4" hx-trigger="every 10s">...</section>'
    assert region_in(answer, "open-sessions") == ("open-sessions", "/queue/?v=4", 10.0)


def test_a_returned_region_without_a_timer_stops_polling_and_a_foreign_answer_changes_nothing():
    assert region_in(b'<div id="timeline" class="x">old messages</div>', "timeline") is None
    assert region_in(b"<p>something else</p>", "timeline") is False
