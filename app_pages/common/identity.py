"""Who this browser session is: the identity every page lists runs for and checks actions against.

With Streamlit's built-in authentication configured (an ``[auth]`` section in ``.streamlit/secrets.toml``,
``st.login`` / ``st.user``, OIDC; docs/security.md), the identity is the provider's: the e-mail address,
else the subject (``sub``). Without it, the person types a name once; the name is bound to the page's
address (``?who=…``, like the presentation toggle), so a reload or a bookmark of that browser keeps it. A
typed name is separation between the people of a class, not security: anyone may type any name, and
the sidebar says so. Until a name is given, the session is a guest (``guest-`` and 8 hex digits, in the
same widget and so in the URL: a newcomer's quick-start run survives a reload); the name typed later
adopts what the guest made (``dlcore.adopt_guest``).

A teacher is an identity listed in ``DLE_TEACHERS`` (``dlcore.access.teachers``). Not a page: app.py
does not list it.
"""
from __future__ import annotations

import re
import uuid

import streamlit as st

import dlcore
from app_pages.common import ui

CLASS_PAGE, CLASS_TITLE = "app_pages/teacher/class_view.py", "Class"  # the teachers' page (app.py adds it for them)
NAME_KEY = "who"  # the name widget's key and its query parameter (?who=alice)
_ASK_KEY = "identity_ask"
_GUEST_KEY = "identity_guest"
_SHOWN_KEY = "identity_shown"  # the name the sidebar showed last: what a change of name changes from
MAX_NAME = 60


def clean_name(value) -> str:
    """A typed name as stored: spaces collapsed, control characters dropped, at most 60 characters."""
    value = re.sub(r"[\x00-\x1f\x7f]", "", str(value or ""))
    return " ".join(value.split())[:MAX_NAME]


def auth_configured() -> bool:
    """True when the app has an ``[auth]`` section in its secrets (``st.login`` can be used)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all, or an unreadable one: no login configured
        return False


def providers() -> list[str | None]:
    """The configured providers, as ``st.login`` names them: None for the default one (``client_id`` right in
    ``[auth]``), then each named one (an ``[auth.name]`` section)."""
    try:
        auth = st.secrets["auth"]
        named = [k for k, v in auth.items() if hasattr(v, "keys")]
        return ([None] if "client_id" in auth else []) + named
    except Exception:  # no secrets, or no [auth]
        return []


def _login_buttons(reason: str, key: str) -> None:
    """A "Log in" button per configured provider (``st.login`` redirects to it)."""
    for provider in providers() or [None]:
        label = f"Log in{'' if provider is None else ' with ' + ui.text(provider)}{reason}"
        if st.button(label, key=f"{key}_{provider or 'default'}", icon=":material/login:"):
            st.login(provider)


def _provider_user() -> dict:
    """``st.user`` as a dict when the person logged in through the identity provider, else {}."""
    try:
        user = st.user.to_dict()
    except Exception:  # no script run context (a unit test outside AppTest)
        return {}
    return user if user.get("is_logged_in") else {}


def _typed_name() -> str:
    """The name this browser typed: the widget's value once drawn, the URL's before (app.py decides the
    navigation, teacher page included, before the sidebar draws the widget). A browser with neither gets a
    guest id in the widget, so the URL keeps it too: a newcomer's quick-start run survives a reload."""
    if NAME_KEY in st.session_state:
        return clean_name(st.session_state[NAME_KEY])
    typed = clean_name(st.query_params.get(NAME_KEY, ""))
    if not typed and not auth_configured():
        st.session_state[NAME_KEY] = typed = _guest()  # before the widget exists in this run: allowed
    return typed


def _guest() -> str:
    if _GUEST_KEY not in st.session_state:
        st.session_state[_GUEST_KEY] = f"guest-{uuid.uuid4().hex[:8]}"
    return st.session_state[_GUEST_KEY]


def _is_guest(typed: str) -> bool:
    return dlcore.is_guest(typed)


def _on_name_change() -> None:
    """A guest who types a name keeps what they made as a guest; an emptied field is the guest again."""
    before, now = st.session_state.get(_SHOWN_KEY, ""), clean_name(st.session_state.get(NAME_KEY))
    if not now:
        st.session_state[NAME_KEY] = now = _guest()
    if _is_guest(before) and not _is_guest(now):
        dlcore.adopt_guest(before.casefold(), now.casefold())


def identity() -> str:
    """The identity runs are owned by: the provider's e-mail (or subject), the typed name (compared
    without case), or this session's guest id."""
    user = _provider_user()
    if user:
        return str(user.get("email") or user.get("sub") or "").strip().casefold() or _guest()
    if auth_configured():
        return _guest()  # with a provider configured, a typed name (or ?who=) counts for nothing
    return _typed_name().casefold() or _guest()


def viewer() -> dlcore.Viewer:
    """The ``dlcore.access.Viewer`` of this session (a teacher when its identity is in DLE_TEACHERS)."""
    return dlcore.Viewer.of(identity())


def name() -> str:
    """The name to show: the provider's name or e-mail, the typed name, or "guest"."""
    user = _provider_user()
    if user:
        return str(user.get("name") or user.get("email") or user.get("sub") or "you")
    if auth_configured():
        return "guest"
    typed = _typed_name()
    return "guest" if not typed or _is_guest(typed) else typed


def is_named() -> bool:
    """True when this session has a lasting identity (logged in, or a typed name)."""
    if _provider_user():
        return True
    typed = "" if auth_configured() else _typed_name()
    return bool(typed) and not _is_guest(typed)


def _take_asked_name() -> None:
    typed = clean_name(st.session_state.get(_ASK_KEY))
    if typed:
        st.session_state[NAME_KEY] = typed  # before the script runs: the sidebar's widget shows it
        _on_name_change()


def ask_name(reason: str = "so that your runs are kept as yours") -> bool:
    """Ask "who are you?" in the page body when the session has no lasting identity; True when it has one.

    Args:
        reason: the end of the sentence that says why the name is asked here.
    """
    if is_named():
        return True
    if auth_configured():
        _login_buttons(f" {ui.text(reason)}", "identity_login_main")
        return False
    st.text_input(f"Your name, {ui.text(reason)}", key=_ASK_KEY, max_chars=MAX_NAME, on_change=_take_asked_name,
                  placeholder="e.g. Ada", icon=":material/badge:",
                  help="Kept in this page's address, so a reload keeps it. This separates the people of a class; "
                       "it is not a password: anyone can type any name.")
    return False


def sidebar() -> None:
    """The identity widget of the sidebar: who this is, and how to change name or log out."""
    user = _provider_user()
    if user:
        role = " · teacher" if viewer().teacher else ""
        st.caption(f":material/account_circle: **{ui.text(name())}**{role}")
        if st.button("Log out", key="identity_logout", icon=":material/logout:"):
            st.logout()
        return
    if auth_configured():
        st.caption(":material/account_circle: Not logged in: you see the class's shared runs only.")
        _login_buttons("", "identity_login")
        return
    _typed_name()  # a guest id in the widget when there is no name yet
    st.text_input("Your name", key=NAME_KEY, max_chars=MAX_NAME, bind="query-params", placeholder="type it once",
                  on_change=_on_name_change,
                  help="Your runs and uploads are kept under this name; the page's address remembers it. "
                       "Separation, not security: anyone can type any name (docs/security.md).")
    st.session_state[_SHOWN_KEY] = clean_name(st.session_state.get(NAME_KEY))
    who = viewer()
    if is_named():
        role = " · teacher" if who.teacher else ""
        st.caption(f":material/account_circle: Runs of **{ui.text(name())}**{role}. Separation, not security: "
                   "anyone can type any name.")
    else:
        st.caption(":material/account_circle: No name yet: you are a guest, kept in this page's address. Type "
                   "your name above; what you made as a guest stays yours.")
