"""monoscape_app_account: one account per (tenant, app), a valid Linux user name,
one-to-one where joining the names would not be, and only for valid names."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.monoscape.paas.plugins.filter.monoscape import monoscape_app_account

# useradd's default NAME_REGEX on Debian, and Linux's 32-character limit
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def test_stable_and_a_valid_user_name():
    account = monoscape_app_account("demo", "hello")
    assert account == monoscape_app_account("demo", "hello")
    assert account.startswith("ms-")
    assert USER_NAME.fullmatch(account), account


def test_longest_names_fit():
    assert USER_NAME.fullmatch(monoscape_app_account("t" * 63, "a" * 63))


@pytest.mark.parametrize(("one", "other"), [(("a-b", "c"), ("a", "b-c")), (("demo", "hello"), ("hello", "demo"))])
def test_names_a_join_would_confuse_get_different_accounts(one, other):
    assert monoscape_app_account(*one) != monoscape_app_account(*other)


@pytest.mark.parametrize(
    ("tenant", "app"),
    [("", "hello"), ("demo", "Hello"), ("../etc", "x"), ("demo", "a" * 64), ("-x", "y"), (None, "y"), ("demo", "a\n")],
)
def test_invalid_names_are_refused(tenant, app):
    with pytest.raises(AnsibleFilterError, match="is not a tenant or app name"):
        monoscape_app_account(tenant, app)
