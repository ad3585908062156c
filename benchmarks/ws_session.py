"""A browser session without the browser: Streamlit's own websocket protocol, spoken from Python.

A served app does all of a page's server-side work for every session: it runs the page script,
polls the store in the live fragments and sends every element and chart back as protobuf
messages. What a browser adds (drawing those charts) happens on the *client's* machine. So one
process can hold dozens of sessions against one server and measure what a classroom costs the
server: ``WsSession`` connects to ``/_stcore/stream``, asks for a page, presses buttons (a widget
trigger, as the frontend sends it), honours the server's ``auto_rerun`` requests of the live
fragments, and times each update from the request to the server's ``script_finished``.

It sends only the widget states it changes (a button's trigger): other widgets keep the values
the server holds for the session, as when a person presses a button without touching the form.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import ClientConnection, connect

_EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")


@dataclass
class PageView:
    """What the server sent for the latest full run of the page (fragment runs update it)."""

    buttons: dict[str, str] = field(default_factory=dict)  # label -> widget id
    alerts: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    exceptions: list[str] = field(default_factory=list)  # tracebacks shown to the person
    metrics: dict[str, str] = field(default_factory=dict)  # st.metric label -> value
    fragments: dict[str, float] = field(default_factory=dict)  # fragment id -> run_every seconds
    query: str = ""
    page_hash: str = ""


class WsSession:
    """One session of a served app. Not thread-safe: give each thread its own."""

    def __init__(self, url: str, *, timeout: float = 60.0, cookies: dict[str, str] | None = None) -> None:
        """``cookies``: sent with the websocket's handshake, as a browser sends those it keeps (the
        app reads a person's identity from them); None: a client that keeps none."""
        self.url = url
        self.timeout = timeout
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else None
        self._ws: ClientConnection = connect(
            url.replace("http://", "ws://", 1) + "/_stcore/stream", subprotocols=["streamlit"],
            max_size=None, open_timeout=timeout, additional_headers=headers,
            legacy=True)  # closed by close(), not a with-block
        self.view = PageView()
        self.update_times: list[float] = []  # seconds from request to script_finished, every run
        self.update_log: list[tuple[str, float, float]] = []  # (kind, monotonic start, seconds)
        self.closed = False
        self._fragment_run = False

    # --- what a person does -----------------------------------------------------------------

    def open(self, page: str, query: dict[str, str] | str = "") -> float:
        """Load ``page`` (its URL path, "" for Home) with a query string, as typing the URL does."""
        self.view = PageView(query=query if isinstance(query, str) else urlencode(query))
        message = BackMsg()
        message.rerun_script.query_string = self.view.query
        message.rerun_script.page_name = page
        return self._run(message, "open")

    def click(self, label: str) -> float:
        """Press the button labelled ``label`` on the current page."""
        widget_id = self.view.buttons[label]
        message = self._rerun()
        state = message.rerun_script.widget_states.widgets.add()
        state.id = widget_id
        state.trigger_value = True
        return self._run(message, "click")

    def rerun(self) -> float:
        """A full rerun of the page as it stands (what any widget change causes)."""
        return self._run(self._rerun(), "rerun")

    def poll(self) -> float:
        """Run each live fragment once, as the browser's timers do; returns the slowest time
        (0.0 when the page polls nothing)."""
        slowest = 0.0
        for fragment_id in list(self.view.fragments):
            message = self._rerun()
            message.rerun_script.fragment_id = fragment_id
            message.rerun_script.is_auto_rerun = True
            slowest = max(slowest, self._run(message, "poll"))
        return slowest

    def close(self) -> None:
        """Close the websocket, as closing the tab does."""
        if not self.closed:
            self.closed = True
            self._ws.close()

    def __enter__(self) -> WsSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the protocol -----------------------------------------------------------------------

    def _rerun(self) -> BackMsg:
        message = BackMsg()
        message.rerun_script.query_string = self.view.query
        message.rerun_script.page_script_hash = self.view.page_hash
        return message

    def _run(self, message: BackMsg, kind: str) -> float:
        # Fragment runs also begin with a new_session message, but redraw only their fragment.
        self._fragment_run = bool(message.rerun_script.fragment_id)
        started = time.monotonic()
        self._ws.send(message.SerializeToString())
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(self._ws.recv(timeout=self.timeout))
            if self._take(forward):
                break
        elapsed = time.monotonic() - started
        self.update_times.append(elapsed)
        self.update_log.append((kind, started, elapsed))
        return elapsed

    def _take(self, forward: ForwardMsg) -> bool:
        """Record what a message shows; True once the run it answers has finished."""
        kind = forward.WhichOneof("type")
        if kind == "new_session" and not self._fragment_run:  # a full run of the script begins
            self.view = PageView(query=self.view.query,
                                 page_hash=forward.new_session.page_script_hash)
        elif kind == "navigation":  # st.navigation names the page it runs
            self.view.page_hash = forward.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.view.query = forward.page_info_changed.query_string
        elif kind == "auto_rerun":
            self.view.fragments[forward.auto_rerun.fragment_id] = forward.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            self.view.fragments.clear()
        elif kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
            self._element(forward.delta.new_element)
        if kind != "script_finished":
            return False
        # A fragment that calls st.rerun() ends early and a full run follows: wait for that one.
        if forward.script_finished == _EARLY_FOR_RERUN:
            self._fragment_run = False
            return False
        return True

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "button":
            self.view.buttons[element.button.label] = element.button.id
        elif kind == "alert":
            format_name = element.alert.DESCRIPTOR.fields_by_name["format"].enum_type \
                .values_by_number[element.alert.format].name.lower()
            self.view.alerts.append((format_name, element.alert.body))
        elif kind == "exception":
            self.view.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "metric":
            self.view.metrics[element.metric.label] = element.metric.body
