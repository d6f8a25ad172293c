"""The typing: ``mean`` keystroke by keystroke, as an editor drives the server, with each ghost-text
suggestion printed as the editor shows it, and Tab for the ones that match what comes next."""

from __future__ import annotations

from tandem_lsp.demo.common import (
    ACCEPT_AFTER,
    KEY_GAP_S,
    LINE_END_PAUSE_S,
    LOOK_MIN_S,
    MAX_SHOWN_LINES,
    PUNCT_GAP_S,
    SOURCE_LABELS,
    Screen,
    Shown,
    clip,
    plain,
    position_at,
)


def keystroke_gap(ch: str, at_line_end: bool) -> float:
    if at_line_end:
        return LINE_END_PAUSE_S
    return KEY_GAP_S if (ch.isalnum() or ch == "_") else PUNCT_GAP_S


def next_key(region: str, i: int) -> str:
    """The text one key inserts at region[i]: a character, or Enter with the next line's indentation
    (as an editor's auto-indent brings it)."""
    if region[i] != "\n":
        return region[i]
    j = i + 1
    while j < len(region) and region[j] in " \t":
        j += 1
    return region[i:j]


def suggestion_lines(s: Shown, *, full: bool, matches: bool, width: int, tty: bool) -> list[tuple[str, str, str]]:
    """The screen lines of one suggestion, each as (plain, dim, plain) parts, fitted to ``width``: the text
    typed so far (its start cut when the line is long), the ghost text (cut with "…"), where it came from."""
    label = "prefetch (cache)" if s.via == "prefetch" else SOURCE_LABELS.get(s.source, s.source)
    lines = s.suggestion.split("\n")
    cursor = "" if tty else "|"
    more = f"  (+{len(lines) - 1} lines)" if len(lines) > 1 and not full else ""
    where = f"    <- {label}, {s.latency_ms:.0f} ms" + ("" if matches else ", not what comes next")
    head = f"{s.line:4d}  "
    typed = s.typed
    room = width - len(head) - len(cursor) - len(more) - len(where)
    least = min(len(lines[0]), max(room // 3, 4))  # of the ghost text, whatever was typed
    keep = max(room - least, 8)
    if len(typed) > keep:  # a long line: keep the end of what was typed
        typed = "…" + typed[-(keep - 1):]
    ghost = clip(lines[0], max(room - len(typed), 4)) if lines[0] else ""
    out = [(head + typed + cursor, ghost, more + where)]
    if full:
        extra = lines[1:]
        for line in extra[:MAX_SHOWN_LINES]:
            out.append((" " * 6, clip(line, width - 6), ""))
        if len(extra) > MAX_SHOWN_LINES:
            out.append((" " * 6, f"(+{plural_lines(len(extra) - MAX_SHOWN_LINES)})", ""))
    return out


def plural_lines(n: int) -> str:
    return f"{n} more line" + ("" if n == 1 else "s")


class Typist:
    """Types ``region`` into a document at its end and records what was shown (``suggestions``)."""

    def __init__(self, client, screen: Screen, speed: float = 1.0):
        self.client, self.screen, self.speed = client, screen, speed
        self.suggestions: list[Shown] = []
        self.keystrokes = 0

    async def type_into(self, uri: str, initial: str, region: str) -> str:
        """Open ``uri`` with ``initial`` (plus a blank line), type ``region`` at its end; the final text."""
        import asyncio
        import time

        from lsprotocol import types

        client, say = self.client, self.screen.say
        if not initial.endswith("\n"):
            initial += "\n"
        text = initial + "\n\n"
        offset = len(text)
        version = 1
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))
        await asyncio.sleep(0.3 / self.speed)

        pending: tuple[str, asyncio.Future] | None = None
        counter = 0
        shown: Shown | None = None  # the ghost text on screen now
        seen = 0  # keys for which matching ghost text has been on screen
        just_accepted = False
        done = 0  # characters of the region in the document

        def change(inserted: str) -> tuple[asyncio.Future, float]:
            nonlocal text, offset, version, pending, counter
            if pending is not None and not pending[1].done():  # VS Code cancels on every keystroke
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
            pos = position_at(text, offset)
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=inserted)],
            ))
            text = text[:offset] + inserted + text[offset:]
            offset += len(inserted)
            counter += 1
            msg_id = f"demo-{counter}"
            sent = time.perf_counter()
            fut = client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position_at(text, offset),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                ),
                msg_id=msg_id,
            )
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # a cancelled request is no error
            pending = (msg_id, fut)
            return fut, sent

        while done < len(region) or shown is not None:
            if shown is not None and seen >= ACCEPT_AFTER and region.startswith(shown.suggestion, done):
                # Tab: the whole suggestion in one change, then the item's command, as an editor does
                shown.accepted = True
                inserted = shown.suggestion
                say(f"  {'<Tab>':<6} accepted {len(inserted)} characters ({SOURCE_LABELS.get(shown.source, shown.source)})")
                fut, sent = change(inserted)
                done += len(inserted)
                cmd = shown.command
                if cmd is not None:
                    await client.workspace_execute_command_async(types.ExecuteCommandParams(
                        command=cmd.command, arguments=list(cmd.arguments or [])))
                gap, look = LINE_END_PAUSE_S, True
                just_accepted = True
            elif done < len(region):
                key = next_key(region, done)
                at_end = done + 1 >= len(region) or region[done + 1] == "\n"
                fut, sent = change(key)
                done += len(key)
                self.keystrokes += 1
                gap, look = keystroke_gap(key, at_end), at_end
            else:
                break
            shown, seen = await self._answer(fut, sent, gap / self.speed, look, text, offset, region, done,
                                             shown, seen, just_accepted)
            just_accepted = False

        if pending is not None and not pending[1].done():
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
        return text

    async def _answer(self, fut, sent, wait_s, look, text, offset, region, done, shown, seen, just_accepted):
        """Wait for this key's suggestion up to the key's gap (at a line end or after Tab, the typist
        looks: at least LOOK_MIN_S); print it; return (ghost text on screen, keys it has been seen)."""
        import asyncio
        import time

        limit = max(wait_s, LOOK_MIN_S) if look else wait_s
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), limit)
            latency_ms = (time.perf_counter() - sent) * 1000
        except Exception:  # noqa: BLE001 - not answered before the next key, cancelled, or failed: nothing shown
            result, latency_ms = None, None
        items = getattr(result, "items", None) if result is not None else None
        new_shown = None
        if items:
            item = items[0]
            suggestion = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
            info = {}
            if item.command is not None and item.command.arguments:
                info = plain(item.command.arguments[0]) or {}
            source = str(info.get("source", "?"))
            line_start = text.rfind("\n", 0, offset) + 1
            new_shown = Shown(
                line=text.count("\n", 0, offset) + 1, typed=text[line_start:offset], suggestion=suggestion,
                latency_ms=latency_ms, source=source, command=item.command,
                via="prefetch" if just_accepted and source == "cache" else None,
            )
            continued = (shown is not None and shown.suggestion.endswith(suggestion)
                         and len(suggestion) < len(shown.suggestion))
            matches = region.startswith(suggestion, done)
            seen = seen + 1 if matches else 0
            self.suggestions.append(new_shown)
            self._print(new_shown, full=not continued, matches=matches)
        else:
            seen = 0
        elapsed = time.perf_counter() - t0
        if elapsed < wait_s:
            await asyncio.sleep(wait_s - elapsed)
        return new_shown, seen

    def _print(self, s: Shown, *, full: bool, matches: bool) -> None:
        scr = self.screen
        for before, ghost, after in suggestion_lines(s, full=full, matches=matches, width=scr.width, tty=scr.tty):
            scr.say(f"{before}{scr.dim(ghost)}{scr.dim(after)}")
