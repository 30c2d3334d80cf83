"""WWW-Authenticate challenge parsing (RFC 7235 §4.1, Docker's token authentication spec).

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.auth import Challenge, parse_challenges

HUB = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"'


def test_it_parses_a_docker_hub_bearer_challenge():
    [challenge] = parse_challenges(HUB)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:library/ubuntu:pull",)
    assert challenge.error == ""


def test_it_keeps_a_scope_with_a_host_port_and_several_actions_whole():
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com:5000",'
        'scope="repository:host:5000/a/b:pull,push"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com:5000",
        "scope": "repository:host:5000/a/b:pull,push",
    }
    assert challenge.scopes == ("repository:host:5000/a/b:pull,push",)


def test_it_keeps_commas_inside_a_quoted_realm():
    header = 'Bearer realm="https://auth.example.com/token?a=1,b=2",service="svc,with,commas"'
    [challenge] = parse_challenges(header)
    assert challenge.realm == "https://auth.example.com/token?a=1,b=2"
    assert challenge.service == "svc,with,commas"


def test_it_keeps_an_equals_sign_and_spaces_inside_a_quoted_value():
    [challenge] = parse_challenges('Basic realm="a = b, Basic c"')
    assert challenge.realm == "a = b, Basic c"


def test_it_splits_several_scopes_on_spaces():
    header = 'Bearer realm="https://r/token",scope="repository:a:pull repository:b:pull,push registry:catalog:*"'
    [challenge] = parse_challenges(header)
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull,push", "registry:catalog:*")


def test_it_reads_an_insufficient_scope_error():
    header = 'Bearer realm="https://r/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"'
    [challenge] = parse_challenges(header)
    assert challenge.error == "insufficient_scope"
    assert challenge.scopes == ("repository:a/b:pull,push",)


def test_it_parses_a_basic_challenge():
    [challenge] = parse_challenges('Basic realm="Registry Realm"')
    assert challenge == Challenge(scheme="basic", params={"realm": "Registry Realm"})
    assert challenge.realm == "Registry Realm"
    assert challenge.service == ""
    assert challenge.scopes == ()


def test_it_parses_a_scheme_without_parameters():
    assert parse_challenges("Basic") == [Challenge(scheme="basic", params={})]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_it_lowercases_the_scheme(scheme):
    [challenge] = parse_challenges(f'{scheme} realm="r"')
    assert challenge.scheme == "bearer"


def test_it_reads_parameter_names_case_insensitively():
    [challenge] = parse_challenges('Bearer Realm="r",SERVICE="s",Scope="repository:a:pull"')
    assert (challenge.realm, challenge.service, challenge.scopes) == ("r", "s", ("repository:a:pull",))


def test_it_keeps_the_case_of_values():
    [challenge] = parse_challenges('Bearer realm="https://Auth.Example.com/Token",service="Reg"')
    assert challenge.realm == "https://Auth.Example.com/Token"
    assert challenge.service == "Reg"


def test_it_allows_spaces_around_commas_and_equals_signs():
    [challenge] = parse_challenges('Bearer   realm = "r" ,  service= "s"  ,scope ="repository:a:pull"')
    assert challenge.params == {"realm": "r", "service": "s", "scope": "repository:a:pull"}


def test_it_reads_unquoted_values():
    [challenge] = parse_challenges("Bearer realm=https://auth.example.com/token,service=registry.example.com")
    assert challenge.realm == "https://auth.example.com/token"
    assert challenge.service == "registry.example.com"


def test_it_unescapes_quoted_pairs():
    [challenge] = parse_challenges(r'Basic realm="say \"hi\" \\ bye"')
    assert challenge.realm == 'say "hi" \\ bye'


def test_it_reads_an_empty_quoted_value():
    [challenge] = parse_challenges('Bearer realm="",service="s"')
    assert challenge.params == {"realm": "", "service": "s"}


# --------------------------------------------------------------------------- several challenges


def test_it_parses_a_bearer_then_a_basic_challenge():
    header = HUB + ', Basic realm="fallback"'
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.scopes == ("repository:library/ubuntu:pull",)
    assert basic == Challenge(scheme="basic", params={"realm": "fallback"})


def test_it_parses_a_basic_then_a_bearer_challenge_without_a_space_after_the_comma():
    header = 'Basic realm="Registry",Bearer realm="https://r/token",service="s",scope="repository:h:5000/a:pull,push"'
    basic, bearer = parse_challenges(header)
    assert basic.params == {"realm": "Registry"}
    assert bearer.params == {"realm": "https://r/token", "service": "s", "scope": "repository:h:5000/a:pull,push"}


def test_it_parses_three_challenges():
    header = 'Bearer realm="a",service="b", Basic realm="c", Digest realm="d", nonce="n"'
    assert [(c.scheme, c.params) for c in parse_challenges(header)] == [
        ("bearer", {"realm": "a", "service": "b"}),
        ("basic", {"realm": "c"}),
        ("digest", {"realm": "d", "nonce": "n"}),
    ]


def test_it_parses_the_rfc_7235_example():
    header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    newauth, basic = parse_challenges(header)
    assert newauth == Challenge(scheme="newauth", params={"realm": "apps", "type": "1", "title": 'Login to "apps"'})
    assert basic == Challenge(scheme="basic", params={"realm": "simple"})


def test_it_parses_a_parameterless_scheme_after_another_challenge():
    header = 'Bearer realm="r", Negotiate'
    assert [c.scheme for c in parse_challenges(header)] == ["bearer", "negotiate"]


def test_it_parses_a_parameterless_scheme_before_another_challenge():
    # RFC 7235: challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ];
    # "Negotiate, Basic realm=..." is two challenges, the first without parameters.
    header = 'Negotiate, Basic realm="r"'
    assert [(c.scheme, c.params) for c in parse_challenges(header)] == [
        ("negotiate", {}),
        ("basic", {"realm": "r"}),
    ]


@pytest.mark.parametrize("header", ["", None, "   ", ",", "=", '"realm"'])
def test_it_returns_no_challenges_for_an_empty_or_meaningless_header(header):
    assert parse_challenges(header) == []


def test_it_gives_empty_defaults_for_missing_parameters():
    challenge = Challenge(scheme="bearer")
    assert (challenge.realm, challenge.service, challenge.scopes, challenge.error) == ("", "", (), "")


# --------------------------------------------------------------------------- properties

param_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
param_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scope_values = st.builds(
    lambda host, path, actions: f"repository:{host}{path}:{actions}",
    st.sampled_from(["", "localhost:5000/", "host:5000/", "registry.example.com/"]),
    st.from_regex(r"[a-z0-9]+(/[a-z0-9]+){0,3}", fullmatch=True),
    st.sampled_from(["pull", "push", "pull,push", "*", "delete,pull,push"]),
)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _challenge(scheme: str, params: dict[str, str], sep: str = ",") -> str:
    return f"{scheme} " + sep.join(f"{k}={_quote(v)}" for k, v in params.items())


@settings(max_examples=500)
@given(st.dictionaries(param_names, param_values, min_size=1, max_size=5), st.sampled_from([",", ", ", " , "]))
def test_it_reads_back_any_quoted_parameters(params, sep):
    [challenge] = parse_challenges(_challenge("Bearer", params, sep))
    assert challenge.scheme == "bearer"
    assert challenge.params == params


@settings(max_examples=300)
@given(param_values, param_values, st.lists(scope_values, min_size=1, max_size=3))
def test_it_reads_back_a_bearer_and_a_basic_challenge(realm, service, scopes):
    params = {"realm": realm, "service": service, "scope": " ".join(scopes)}
    header = _challenge("Bearer", params) + ", " + _challenge("Basic", {"realm": realm})
    bearer, basic = parse_challenges(header)
    assert bearer.params == params
    assert bearer.scopes == tuple(scopes)
    assert basic.params == {"realm": realm}


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.lists(st.sampled_from(["Bearer", "Basic", " ", ",", "=", '"', "\\", "realm", "a"]), max_size=20).map(
            "".join
        ),
    )
)
def test_it_never_raises_on_any_header(header):
    challenges = parse_challenges(header)
    assert all(isinstance(c, Challenge) and c.scheme == c.scheme.lower() for c in challenges)


def test_a_kept_clients_token_cache_forgets_expired_tokens_as_it_meets_new_scopes():
    """A client kept between scan parts meets one scope per repository: expired tokens do not pile up."""
    import time

    from registry.auth import TokenCache

    cache = TokenCache()
    for index in range(1000):
        cache.put(frozenset({f"repository:r{index}:pull"}), f"t{index}", 0.001)
    time.sleep(0.01)
    cache.put(frozenset({"repository:last:pull"}), "last", 300)
    assert len(cache._tokens) <= 256
    assert cache.get(frozenset({"repository:last:pull"})) == "last"
