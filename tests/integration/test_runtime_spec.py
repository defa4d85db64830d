"""The pure parts of running a container, without starting one: docker's config merge,
the seccomp profile for a capability set, capabilities, mount/tmpfs/ulimit parsing,
signals, detach keys, and the runtime version check against known escapes (with the
Debian changelog of the installed runc)."""

from __future__ import annotations

import resource
import shutil
import signal

import pytest

from engine.errors import InvalidArgument
from engine.runtime import caps, driver, hostconfig, seccomp, spec
from engine.runtime.attach import parse_detach_keys
from engine.runtime.signals import parse_signal

IMAGE = {
    "config": {
        "Env": ["PATH=/bin", "A=image", "B=image"],
        "Entrypoint": ["/entry"],
        "Cmd": ["image-cmd"],
        "WorkingDir": "/srv",
        "User": "app",
        "Labels": {"l1": "image", "l2": "image"},
        "Volumes": {"/data": {}},
        "StopSignal": "SIGUSR1",
    }
}


def test_merge_config_docker_rules() -> None:
    merged = spec.merge_config(IMAGE, {"Env": ["B=user", "C=user"], "Labels": {"l2": "user"}})
    assert merged["Env"] == ["PATH=/bin", "A=image", "B=user", "C=user"]
    assert merged["Entrypoint"] == ["/entry"] and merged["Cmd"] == ["image-cmd"]
    assert merged["WorkingDir"] == "/srv" and merged["User"] == "app"
    assert merged["Labels"] == {"l1": "image", "l2": "user"}
    assert merged["StopSignal"] == "SIGUSR1" and merged["Volumes"] == {"/data": {}}
    # a given entrypoint drops the image's cmd; a given cmd keeps the image's entrypoint
    assert spec.merge_config(IMAGE, {"Entrypoint": ["/other"]})["Cmd"] is None
    assert spec.args_of(spec.merge_config(IMAGE, {"Cmd": ["x"]})) == ["/entry", "x"]
    # no PATH anywhere: docker's default
    bare = spec.merge_config({"config": {"Cmd": ["sh"]}}, {})
    assert bare["Env"] == [spec.DEFAULT_PATH]
    with pytest.raises(InvalidArgument, match="No command"):
        spec.merge_config({"config": {}}, {})
    with pytest.raises(InvalidArgument, match="absolute"):
        spec.merge_config(IMAGE, {"WorkingDir": "rel"})
    with pytest.raises(InvalidArgument, match="/proc"):
        spec.check_workdir("/proc/self/fd/7")
    spec.check_workdir("/processes")  # only /proc itself and below


def test_seccomp_profile_follows_capabilities() -> None:
    default = seccomp.profile_for(list(caps.DEFAULT_CAPS))
    names = {
        n
        for rule in default["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for n in rule["names"]
    }
    assert default["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"read", "write", "execve", "openat"} <= names
    assert not {"mount", "unshare", "setns", "keyctl", "bpf", "kexec_load"} & names
    clone = [r for r in default["syscalls"] if r["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = [r for r in default["syscalls"] if "clone3" in r["names"]]
    assert clone3[0]["action"] == "SCMP_ACT_ERRNO" and clone3[0]["errnoRet"] == 38
    admin = seccomp.profile_for([*caps.DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    admin_names = {
        n for r in admin["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]
    }
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= admin_names
    assert not [r for r in admin["syscalls"] if r["action"] == "SCMP_ACT_ERRNO"]


def test_capabilities() -> None:
    assert len(caps.DEFAULT_CAPS) == 14
    assert caps.effective_set(privileged=False, cap_add=None, cap_drop=None) == list(
        caps.DEFAULT_CAPS
    )
    assert caps.effective_set(privileged=True, cap_add=None, cap_drop=None) == list(
        caps.available()
    )
    only = caps.effective_set(privileged=False, cap_add=["chown"], cap_drop=["ALL"])
    assert only == ["CAP_CHOWN"]
    with pytest.raises(InvalidArgument):
        caps.normalize("NOT_A_CAP")
    if "CAP_SYS_RESOURCE" not in caps.available():  # these machines lack it
        with pytest.raises(InvalidArgument, match="does not hold"):
            caps.effective_set(privileged=False, cap_add=["SYS_RESOURCE"], cap_drop=None)


def test_mount_parsing() -> None:
    bind = hostconfig.parse_bind("/host/dir/../x:/ctr:ro,rslave")
    assert (bind.type, bind.source, bind.destination, bind.read_only, bind.propagation) == (
        "bind",
        "/host/x",
        "/ctr",
        True,
        "rslave",
    )
    vol = hostconfig.parse_bind("myvol:/data")
    assert vol.type == "volume" and vol.source == "myvol"
    anon = hostconfig.parse_bind("/just/a/path")
    assert anon.type == "volume" and anon.anonymous
    for bad in ("/a:/", "/a:relative", "bad name:/x", "/a:/b:rw,bogus", "v:/x:rshared"):
        with pytest.raises(InvalidArgument):
            hostconfig.parse_bind(bad)
    tmpfs = hostconfig.parse_tmpfs({"/run": "size=64m,noexec,mode=755"})[0]
    assert tmpfs.options == [f"size={64 << 20}", "noexec", "mode=755"]
    for bad in ({"/x": "bind-propagation=shared"}, {"/x": "mode=999"}, {"/x": "uid=root"}):
        with pytest.raises(InvalidArgument):
            hostconfig.parse_tmpfs(bad)


def test_ulimits_never_above_hard() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits, warnings = hostconfig.parse_ulimits(
        [{"Name": "nofile", "Soft": hard * 10, "Hard": hard * 10}]
    )
    assert limits[0].hard == hard and limits[0].soft == hard and warnings
    with pytest.raises(InvalidArgument):
        hostconfig.parse_ulimits([{"Name": "nofile", "Soft": 10, "Hard": 5}])
    with pytest.raises(InvalidArgument):
        hostconfig.parse_ulimits([{"Name": "bogus", "Soft": 1, "Hard": 1}])


def test_signals_and_detach_keys() -> None:
    assert parse_signal("TERM") == parse_signal("sigterm") == parse_signal("15") == signal.SIGTERM
    assert parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert parse_signal(None, signal.SIGKILL) == signal.SIGKILL
    for bad in ("SIGNOPE", "0", "999"):
        with pytest.raises(InvalidArgument):
            parse_signal(bad)
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidArgument):
        parse_detach_keys("ctrl-aa")


def test_runtime_escape_warnings() -> None:
    assert "CVE-2024-21626" in " ".join(driver.security_warnings("runc", "1.1.11", "/opt/runc"))
    assert driver.security_warnings("runc", "1.4.1", "/opt/runc") == []
    assert driver.security_warnings("crun", "1.8.1", "/opt/crun") == []
    runc = shutil.which("runc")
    if runc and "deb12u" in driver._distro_changelog(runc, "runc"):
        # Debian 12's runc 1.1.5+ds1-1+deb12u1 carries the CVE-2024-21626 fix
        text = " ".join(driver.security_warnings("runc", "1.1.5+ds1", runc))
        assert "CVE-2024-21626" not in text


async def test_runtime_probe(tmp_path) -> None:
    runtimes = await driver.Runtimes.probe(tmp_path / "state")
    assert runtimes.default in runtimes.available
    for rt in runtimes.available.values():
        assert rt.version and rt.state_root == tmp_path / "state" / rt.name
    with pytest.raises(Exception, match="not found"):
        await driver.Runtimes.probe(tmp_path / "state", "/no/such/runtime")
