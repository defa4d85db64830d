"""attach, logs and resize of containers (a mixin of ``ContainerService``): attach
sessions through the monitor (also before the container starts), json-file log reading
with docker's options, and terminal resizes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.errors import Conflict, InvalidArgument
from engine.runtime.attach import Attachment, parse_detach_keys
from engine.runtime.logs import parse_timestamp_arg, read_logs
from engine.runtime.monitorclient import AttachStream


class StreamsMixin:
    """The stream operations of ``ContainerService``."""

    async def attach(
        self,
        name: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stream: bool = True,
        detach_keys: str | None = None,
    ) -> Attachment:
        """Attach to a container (before or after it starts); see ``Attachment``."""
        rec = self._get(name)
        keys = parse_detach_keys(detach_keys)
        replay: list[tuple[str, bytes]] = []
        if logs:
            async for kind, data in self.logs(rec.Id, stdout=stdout, stderr=stderr):
                replay.append((kind, data))
        att = Attachment(
            stdin=stdin and bool(rec.Config.get("OpenStdin")),
            detach_keys=keys,
            stdout=stdout,
            stderr=stderr,
            replay=replay,
        )
        if not stream:
            att.connected(None)
            return att
        st = self._state[rec.Id]
        if rec.State.Running:
            await self._connect(att, self._dir(rec.Id), rec)
        else:
            st.pending_attach.append(att)
        self._publish(rec, "attach")
        return att

    async def resize(self, name: str, height: int, width: int) -> None:
        rec = self._get(name)
        if not rec.State.Running:
            raise Conflict(f"Container {rec.Id[:12]} is not running")
        if not rec.Config.get("Tty"):
            return
        stream = await AttachStream.connect(
            self._dir(rec.Id), stdin=False, stdout=False, stderr=False
        )
        try:
            await stream.resize(height, width)
        finally:
            stream.close()
        self._publish(rec, "resize", {"height": str(height), "width": str(width)})

    async def logs(
        self,
        name: str,
        *,
        stdout: bool = True,
        stderr: bool = True,
        since: str | int | float | None = None,
        until: str | int | float | None = None,
        tail: int | str | None = None,
        follow: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[tuple[str, bytes]]:
        """(stream, line) of the json-file log with docker's options."""
        rec = self._get(name)
        log_type = (rec.HostConfig.get("LogConfig") or {}).get("Type") or "json-file"
        if log_type != "json-file":
            raise InvalidArgument(
                f'configured logging driver "{log_type}" does not support reading'
            )
        if tail in (None, "", "all"):
            tail_n = None
        else:
            try:
                tail_n = max(0, int(tail))  # type: ignore[arg-type]
            except ValueError:
                raise InvalidArgument(f"invalid tail {tail!r}: give a number or all") from None
        cid = rec.Id
        path = self._dir(cid) / f"{cid}-json.log"

        def running() -> bool:
            r = self._records.get(cid)
            return bool(r and (r.State.Running or r.State.Restarting))

        async for entry in read_logs(
            path,
            stdout=stdout,
            stderr=stderr,
            since=parse_timestamp_arg(since),
            until=parse_timestamp_arg(until),
            tail=tail_n,
            follow=follow,
            running=running,
        ):
            data = entry.data
            if timestamps:
                data = entry.time.encode() + b" " + data
            yield entry.stream, data
