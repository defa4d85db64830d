"""Stage graph: references by name and index, --target pruning, concurrent waves."""

from __future__ import annotations

import pytest

from engine.build.graph import default_platform_args, global_args, stage_graph
from engine.build.instructions import parse_dockerfile
from engine.errors import InvalidArgument

MULTI = """\
ARG GO=1.22
ARG BASE
FROM golang:${GO} AS deps
RUN fetch
FROM deps AS build
RUN --mount=type=cache,target=/c,from=cachebase make
FROM node:20 AS web
RUN npm ci
FROM busybox AS test
COPY --from=build /bin/app /app
FROM scratch AS final
COPY --from=build /bin/app /app
COPY --from=2 /dist /www
COPY --from=alpine:3 /etc/ssl /etc/ssl
"""


def graph(text: str, **args: str):  # type: ignore[no-untyped-def]
    return stage_graph(parse_dockerfile(text), args)


def test_references_resolved() -> None:
    g = graph(MULTI)
    assert g.names == {"deps": 0, "build": 1, "web": 2, "test": 3, "final": 4}
    deps, build, web, test, final = g.nodes
    assert deps.base == "golang:1.22" and deps.images == {"golang:1.22"}
    assert build.base_stage == 0 and build.depends == {0} and build.images == {"cachebase"}
    assert web.depends == set() and web.images == {"node:20"}
    assert test.depends == {1}
    assert final.depends == {1, 2}
    assert final.images == {"alpine:3"}


def test_target_prunes_and_waves() -> None:
    g = graph(MULTI)
    assert g.needed() == [0, 1, 2, 4]
    assert g.levels() == [[0, 2], [1], [4]]
    assert g.needed("test") == [0, 1, 3]
    assert g.levels("TEST") == [[0], [1], [3]]
    assert g.needed("2") == [2]
    assert g.images("web") == {"node:20"}
    assert g.images() == {"golang:1.22", "cachebase", "node:20", "alpine:3"}
    with pytest.raises(InvalidArgument, match=r"target stage 'nope' not found \(stages: build,"):
        g.index("nope")


def test_build_args_override_global_args() -> None:
    g = graph(MULTI, GO="1.21")
    assert g.nodes[0].base == "golang:1.21"
    assert g.global_args["GO"] == "1.21"


def test_platform_args_are_global() -> None:
    args = default_platform_args()
    assert args["TARGETOS"] == "linux" and args["BUILDPLATFORM"].startswith("linux/")
    df = parse_dockerfile("FROM busybox-$TARGETARCH\n")
    assert stage_graph(df).nodes[0].base == f"busybox-{args['TARGETARCH']}"
    assert global_args(df, {})["TARGETPLATFORM"] == args["TARGETPLATFORM"]


def test_stage_args_expand_copy_from() -> None:
    text = (
        "ARG SRC=one\nFROM a AS one\nFROM b AS two\n"
        "FROM c\nARG SRC\nENV OTHER=two\nCOPY --from=$SRC /x /x\nCOPY --from=${OTHER} /y /y\n"
    )
    assert graph(text).nodes[2].depends == {0, 1}
    assert graph(text, SRC="two").nodes[2].depends == {1}


def test_env_inherited_from_base_stage() -> None:
    text = "FROM a AS one\nENV SRC=dep\nFROM x AS dep\nFROM one\nCOPY --from=$SRC /x /x\n"
    assert graph(text).nodes[2].depends == {0, 1}


def test_unset_from_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="Dockerfile:2: FROM expands to an empty name"):
        graph("ARG BASE\nFROM $BASE\n")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM a AS x\nCOPY --from=x /a /b\n", "refers to its own stage"),
        ("FROM a\nCOPY --from=0 /a /b\n", "refers to its own stage"),
        ("FROM a\nCOPY --from=5 /a /b\n", "names stage 5, but there are only 1"),
        (
            "FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\nCOPY --from=x /a /b\n",
            "circular dependency between stages: x -> y -> x",
        ),
        ("FROM later AS first\nFROM b AS later\n", "refers to this stage or a later one"),
        ("FROM a\nRUN --mount=from=$M,target=/m,id=$I true\n", "needs a stage or image"),
        ("FROM a\nARG ID=../x\nRUN --mount=type=cache,target=/m,id=$ID true\n", "'..'"),
    ],
)
def test_graph_errors(text: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        graph(text)


def test_forward_reference_by_name_is_allowed() -> None:
    g = graph("FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\n")
    assert g.nodes[0].depends == {1}
    assert g.levels("x") == [[1], [0]]


def test_independent_stages_run_together() -> None:
    text = "FROM a AS a1\nFROM b AS b1\nFROM c AS c1\nFROM scratch\n"
    text += "COPY --from=a1 / /a\nCOPY --from=b1 / /b\nCOPY --from=c1 / /c\n"
    g = graph(text)
    assert g.levels() == [[0, 1, 2], [3]]
    assert g.nodes[3].images == set()


def test_platform_flag_expanded() -> None:
    g = graph("ARG P=linux/arm64\nFROM --platform=$P a\nFROM --platform=$BUILDPLATFORM b\nFROM c\n")
    assert [n.platform for n in g.nodes] == [
        "linux/arm64",
        default_platform_args()["BUILDPLATFORM"],
        None,
    ]


def test_env_beats_arg() -> None:
    text = (
        "FROM a AS one\nFROM b AS two\n"
        "FROM c AS base\nENV SRC=one\n"
        "FROM base\nARG SRC=two\nCOPY --from=$SRC /x /x\n"
    )
    assert graph(text, SRC="two").nodes[3].depends == {0, 2}
