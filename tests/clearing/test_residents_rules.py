"""Residents' pure rules, by the thousand: logins, passwords, card proofs, rate-limit windows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from clearing.residents import rules
from clearing.residents.rules import CardEvidence, LoginKind, ProofKind

emails = st.from_regex(rules.EMAIL_PATTERN, fullmatch=True).filter(
    lambda text: len(text) <= rules.EMAIL_LENGTH_MAX
)
phones = st.from_regex(rules.PHONE_PATTERN, fullmatch=True)
schema_logins = st.from_regex(rules.LOGIN_PATTERN, fullmatch=True).filter(
    lambda text: len(text) <= rules.EMAIL_LENGTH_MAX
)


@given(schema_logins)
def test_every_login_the_schema_admits_normalises(text: str) -> None:
    login = rules.normalise_login(text)
    assert rules.normalise_login(login.value) == login  # idempotent
    assert len(login.value) <= rules.EMAIL_LENGTH_MAX


@given(emails)
def test_an_email_is_one_login_whatever_its_case(text: str) -> None:
    login = rules.normalise_login(text)
    assert login.kind is LoginKind.EMAIL
    assert rules.normalise_login(text.upper()) == rules.normalise_login(text.lower()) == login


@given(phones)
def test_a_phone_number_is_stored_in_e164(text: str) -> None:
    login = rules.normalise_login(text)
    assert login.kind is LoginKind.PHONE
    assert re.fullmatch(r"\+[1-9][0-9]{7,14}", login.value)
    if not text.startswith("+"):
        assert login.value == "+86" + text
        assert rules.normalise_login("+86" + text) == login  # both forms: one account


@given(st.text(max_size=300))
def test_anything_else_is_refused_with_the_rule(text: str) -> None:
    assume(not re.fullmatch(rules.LOGIN_PATTERN, text) or len(text) > rules.EMAIL_LENGTH_MAX)
    with pytest.raises(rules.LoginInvalid, match="email address"):
        rules.normalise_login(text)


@pytest.mark.parametrize("text", ["han@example", "han @example.cn", "12345", "+0123456789", ""])
def test_near_misses_are_not_logins(text: str) -> None:
    with pytest.raises(rules.LoginInvalid):
        rules.normalise_login(text)


@given(st.text(min_size=rules.PASSWORD_LENGTH_MIN, max_size=rules.PASSWORD_LENGTH_MAX), emails)
def test_a_long_enough_password_is_accepted_unless_known_or_the_login(
    password: str, login: str
) -> None:
    assume(password.casefold() not in rules.COMMON_PASSWORDS)
    assume(password.casefold() != login.casefold())
    assert rules.password_problem(password, login) is None


@given(st.one_of(st.text(max_size=rules.PASSWORD_LENGTH_MIN - 1), st.text(min_size=129)))
def test_a_password_of_the_wrong_length_is_refused_with_the_rule(password: str) -> None:
    assume(len(password) > rules.PASSWORD_LENGTH_MAX or len(password) < rules.PASSWORD_LENGTH_MIN)
    problem = rules.password_problem(password, "han@example.cn")
    assert problem is not None and "10 to 128 characters" in problem


@given(st.sampled_from(sorted(rules.COMMON_PASSWORDS)))
def test_a_well_known_password_is_refused_in_any_case(password: str) -> None:
    assert rules.password_problem(password.upper(), "han@example.cn") == rules.PASSWORD_RULE


amounts = st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1))


@given(amounts, amounts, amounts, st.integers(min_value=0, max_value=2**32 - 1))
def test_a_proof_matches_exactly_what_clearing_knows(
    last_balance: int | None, ledger_balance: int | None, last_load: int | None, answer: int
) -> None:
    evidence = CardEvidence(last_balance, ledger_balance, last_load)
    assert rules.proof_matches(ProofKind.BALANCE, answer, evidence) == (
        answer in (last_balance, ledger_balance)
    )
    assert rules.proof_matches(ProofKind.LAST_LOAD, answer, evidence) == (answer == last_load)


def test_nothing_known_proves_nothing() -> None:
    nothing = CardEvidence(None, None, None)
    assert not any(rules.proof_matches(kind, 0, nothing) for kind in ProofKind)


NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@given(
    st.lists(st.integers(min_value=0, max_value=7_200), max_size=12),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=60, max_value=3_600),
)
def test_a_wait_ends_exactly_when_enough_failures_leave_the_window(
    ages_s: list[int], failures_max: int, window_s: int
) -> None:
    window = timedelta(seconds=window_s)
    failures = [NOW - timedelta(seconds=age) for age in ages_s]
    inside = [at for at in failures if NOW - window < at]
    wait = rules.retry_after_s(failures, now=NOW, failures_max=failures_max, window=window)
    if len(inside) < failures_max:
        assert wait is None
        return
    assert wait is not None and 1 <= wait <= window_s
    later = NOW + timedelta(seconds=wait)
    assert (
        rules.retry_after_s(failures, now=later, failures_max=failures_max, window=window) is None
    )
    if wait > 1:
        sooner = later - timedelta(seconds=1)
        assert rules.retry_after_s(failures, now=sooner, failures_max=failures_max, window=window)


def test_the_password_limit_counts_since_the_window_or_the_last_sign_in_and_says_so() -> None:
    limit = rules.PasswordLimit(failures_max=3, window=timedelta(minutes=15))
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert limit.counted_since(now, None) == now - timedelta(minutes=15)
    assert limit.counted_since(now, now - timedelta(hours=1)) == now - timedelta(minutes=15)
    assert limit.counted_since(now, now - timedelta(minutes=2)) == now - timedelta(minutes=2)
    failures = [now - timedelta(minutes=m) for m in (10, 5, 1)]
    assert limit.wait_s(failures[1:], now) is None  # two of three: one more try
    assert limit.wait_s(failures, now) == 5 * 60  # the oldest leaves the window in 5 minutes
    assert limit.locked(300) == "3 wrong passwords within 15 minutes: try again in 300 s"
    assert limit.wrong("username") == (
        "the username or the password is wrong; after 3 wrong passwords the account waits "
        "15 minutes"
    )
