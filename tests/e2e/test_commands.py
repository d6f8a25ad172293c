"""The escalation commands end to end: the real server, the fake local model and a fake Anthropic
Messages API driven through the real SDK (cloud.baseUrl), with an isolated state directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tests.e2e.conftest import start_session
from tests.fakes.anthropic_server import FakeAnthropicServer

AWS_KEY = "AKIA" + "Z7Q2" * 4  # a fake key in the real format
CALC = f'''import math

AWS_ACCESS_KEY_ID = "{AWS_KEY}"


def area(r):
    return math.pi * r * r / 0
'''
TEST = "from calc import area\n\n\ndef test_area():\n    assert area(1) > 3\n"
CLOUD_REPLY = "## Cause\nDivision by zero in `area`.\n"


@pytest.fixture
def claude():
    server = FakeAnthropicServer(reply=CLOUD_REPLY).start()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "test_calc.py").write_text(TEST)
    (root / ".env").write_text("SECRET_TOKEN=do-not-send-me\n")
    return root


def failure_text(root) -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "{root}/test_calc.py", line 5, in test_area\n'
        "    assert area(1) > 3\n"
        f'  File "{root}/calc.py", line 7, in area\n'
        "    return math.pi * r * r / 0\n"
        "ZeroDivisionError: float division by zero\n"
    )


def settings(fake, claude, **cloud) -> dict:
    return {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 2000},
        "cloud": {"baseUrl": claude.url, **cloud},
        "completion": {"debounceMs": 0},
    }


async def session_for(editor, fake, claude, project, tmp_path, key="test-key", **cloud):
    env = {"ANTHROPIC_API_KEY": key, "TANDEM_STATE_DIR": str(tmp_path / "state")}
    s = await start_session(editor, fake, settings(fake, claude, **cloud), env, root_uri=project.as_uri())
    return s


async def execute(s, command: str, *args, msg_id=None, token=None):
    params = types.ExecuteCommandParams(command=command, arguments=list(args), work_done_token=token)
    if msg_id is None:
        return await s.client.workspace_execute_command_async(params)
    return await s.client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id)


@pytest.fixture
async def cmd(editor, fake, claude, project, tmp_path, request):
    marker = request.node.get_closest_marker("cloud")
    options = dict(marker.kwargs) if marker else {}
    key = options.pop("key", "test-key")
    s = await session_for(editor, fake, claude, project, tmp_path, key=key, **options)
    s.claude, s.project = claude, project
    yield s
    await s.client.shutdown_session()
    await s.client.stop()


def cloud_body(claude) -> str:
    return json.dumps(claude.message_requests()[-1].body)


async def test_explain_failure_escalates_with_the_frames_code(cmd):
    result = await execute(cmd, "tandem.explainFailure",
                           {"uri": (cmd.project / "test_calc.py").as_uri(), "failure": failure_text(cmd.project)})
    assert result["tier"] == "cloud" and result["markdown"] == CLOUD_REPLY
    assert result["costUsd"] > 0 and result["fallbackReason"] is None and result["model"]
    body = cmd.claude.message_requests()[-1].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}  # the stable system prompt is cached
    user = body["messages"][0]["content"]
    assert "ZeroDivisionError" in user and "return math.pi * r * r / 0" in user  # the frame's function
    assert "Fix" in body["system"][0]["text"] and "diff" in body["system"][0]["text"]


async def test_secrets_never_reach_the_cloud(cmd):
    cmd.open((cmd.project / "calc.py").as_uri(), CALC)
    await execute(cmd, "tandem.ask", {"prompt": "Why does this module fail at import time, and how should the design change?",
                                      "uri": (cmd.project / "calc.py").as_uri()})
    failure = failure_text(cmd.project) + f'  File "{cmd.project}/.env", line 1\n'
    await execute(cmd, "tandem.explainFailure", {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure})
    sent = " ".join(json.dumps(r.body) for r in cmd.claude.message_requests())
    assert cmd.claude.message_requests()
    assert AWS_KEY not in sent and "do-not-send-me" not in sent
    assert "redacted" in sent
    privacy = (await execute(cmd, "tandem.stats"))["privacy"]
    assert privacy["redacted"] >= 1 and privacy["blockedFiles"] == 1


@pytest.mark.cloud(enabled=False)
async def test_disabled_cloud_falls_back_to_the_local_model(cmd):
    cmd.fake.completion = "Local explanation: division by zero."
    result = await execute(cmd, "tandem.explainFailure", {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure_text(cmd.project)})
    assert result["tier"] == "local" and "cloud.enabled" in result["fallbackReason"]
    assert result["markdown"] == "Local explanation: division by zero." and result["costUsd"] == 0
    assert cmd.fake.generation_requests()[-1].path == "/v1/chat/completions"
    assert not cmd.claude.message_requests()


@pytest.mark.cloud(key="")
async def test_missing_key_falls_back(cmd):
    result = await execute(cmd, "tandem.planRefactor", {"uri": (cmd.project / "calc.py").as_uri(), "goal": "split area"})
    assert result["tier"] == "local" and "ANTHROPIC_API_KEY" in result["fallbackReason"]
    assert not cmd.claude.message_requests()


@pytest.mark.cloud(key="sk-ant-wrong-key")
async def test_a_rejected_key_is_not_sent_again(cmd):
    args = {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure_text(cmd.project)}
    first = await execute(cmd, "tandem.explainFailure", args)
    assert first["tier"] == "local" and "auth" in first["fallbackReason"]
    assert len(cmd.claude.message_requests()) == 1  # refused with 401
    again = await execute(cmd, "tandem.explainFailure", args)
    assert again["tier"] == "local" and "rejected the API key in ANTHROPIC_API_KEY" in again["fallbackReason"]
    assert "sk-ant-wrong-key" not in json.dumps(again)
    assert len(cmd.claude.message_requests()) == 1  # waiting does not fix a wrong key: not sent again
    # another cloud setting (here the model) is worth one more try
    changed = settings(cmd.fake, cmd.claude)
    changed["cloud"]["model"] = "claude-haiku-4-5"
    cmd.client.set_configuration({"tandem": changed})
    cmd.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    for _ in range(100):
        third = await execute(cmd, "tandem.explainFailure", args)
        if len(cmd.claude.message_requests()) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(cmd.claude.message_requests()) == 2 and third["tier"] == "local"


@pytest.mark.cloud(dailyBudgetUsd=0)
async def test_zero_budget_never_calls_the_cloud(cmd):
    result = await execute(cmd, "tandem.explainFailure", {"uri": (cmd.project / "calc.py").as_uri(), "failure": "boom"})
    assert result["tier"] == "local" and "budget" in result["fallbackReason"].lower()
    assert not cmd.claude.message_requests()


@pytest.mark.cloud(dailyBudgetUsd=0.052)
async def test_budget_exhaustion_stops_cloud_calls(cmd):
    cmd.claude.reply = CLOUD_REPLY * 80  # ~1,000 output tokens: about $0.015 at Sonnet prices
    args = {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure_text(cmd.project)}
    first = await execute(cmd, "tandem.explainFailure", args)
    second = await execute(cmd, "tandem.explainFailure", args)
    assert first["tier"] == "cloud" and first["costUsd"] > 0.002  # $0.05 is reserved per call: 0.05 + cost > 0.052
    assert second["tier"] == "local" and "budget" in second["fallbackReason"].lower()
    assert len(cmd.claude.message_requests()) == 1


@pytest.mark.parametrize("fault", ["rate_limit", "server_error"])
async def test_cloud_failure_falls_back_and_the_breaker_holds(cmd, fault):
    cmd.claude.fault = fault
    cmd.claude.retry_after = 60
    args = {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure_text(cmd.project)}
    result = await execute(cmd, "tandem.explainFailure", args)
    assert result["tier"] == "local" and result["fallbackReason"]
    calls = len(cmd.claude.message_requests())
    if fault == "rate_limit":  # Retry-After honoured: the next command does not even try
        again = await execute(cmd, "tandem.explainFailure", args)
        assert again["tier"] == "local" and "rate" in again["fallbackReason"].lower()
        assert len(cmd.claude.message_requests()) == calls


async def test_cancel_request_stops_the_cloud_stream(cmd):
    cmd.claude.first_token_latency = 30
    fut = asyncio.ensure_future(execute(cmd, "tandem.explainFailure",
                                        {"uri": (cmd.project / "calc.py").as_uri(), "failure": "boom"}, msg_id="cmd-1"))
    assert await asyncio.to_thread(cmd.claude.wait_for, lambda: cmd.claude.message_requests(), 10)
    cmd.client.protocol.notify("$/cancelRequest", types.CancelParams(id="cmd-1"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(fut, 10)
    assert await asyncio.to_thread(cmd.claude.wait_for_hangup, 5)


async def test_progress_and_its_cancel_button(cmd):
    cmd.claude.first_token_latency = 30
    token = "progress-1"
    cmd.client.progress_reports.setdefault(token, [])
    fut = asyncio.ensure_future(execute(cmd, "tandem.explainFailure",
                                        {"uri": (cmd.project / "calc.py").as_uri(), "failure": "boom"}, token=token))
    assert await asyncio.to_thread(cmd.claude.wait_for, lambda: cmd.claude.message_requests(), 10)
    cmd.client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(fut, 10)
    assert result["fallbackReason"] == "cancelled"
    assert await asyncio.to_thread(cmd.claude.wait_for_hangup, 5)
    kinds = [type(r).__name__ for r in cmd.client.progress_reports[token]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_ask_is_routed_by_the_request(cmd):
    cmd.fake.completion = "renamed"
    local = await execute(cmd, "tandem.ask", {"prompt": "Rename the variable r to radius in this function"})
    assert local["tier"] == "local" and local["route"]["tier"] == "local" and local["route"]["reason"]
    cloud = await execute(cmd, "tandem.ask", {"prompt": "Why does our checkout service deadlock under load? "
                                                        "Walk through the locking across modules and plan a fix."})
    assert cloud["tier"] == "cloud" and cloud["route"]["tier"] == "cloud"


async def test_stats_count_calls_spend_and_savings(cmd):
    cmd.fake.completion = "local answer"
    await execute(cmd, "tandem.ask", {"prompt": "Rename the variable r to radius"})
    await execute(cmd, "tandem.explainFailure", {"uri": (cmd.project / "calc.py").as_uri(), "failure": failure_text(cmd.project)})
    stats = await execute(cmd, "tandem.stats")
    assert stats["local"]["calls"] == 1 and stats["cloud"]["calls"] == 1
    assert stats["costUsd"] > 0 and stats["savedUsd"] > 0
    assert {"hits", "misses", "entries"} <= set(stats["cache"])


async def test_result_opens_as_a_markdown_document(cmd):
    await execute(cmd, "tandem.explainFailure", {"uri": (cmd.project / "calc.py").as_uri(), "failure": "boom"})
    caps = cmd.client.capabilities.window
    if caps is not None and caps.show_document is not None and caps.show_document.support:
        shown = cmd.client.shown_documents[-1].uri
        assert shown.endswith(".md") and CLOUD_REPLY.strip() in open(shown[len("file://"):]).read()
    else:
        assert cmd.client.shown_documents == []


async def test_ledger_survives_a_server_kill(editor, fake, claude, project, tmp_path):
    s = await session_for(editor, fake, claude, project, tmp_path)
    await execute(s, "tandem.explainFailure", {"uri": (project / "calc.py").as_uri(), "failure": "boom"})
    os.kill(s.client._server.pid, signal.SIGKILL)
    await s.client._server.wait()
    await s.client.stop()
    s2 = await session_for(editor, fake, claude, project, tmp_path)
    try:
        stats = await execute(s2, "tandem.stats")
        assert stats["cloud"]["calls"] == 1 and stats["costUsd"] > 0
    finally:
        await s2.client.shutdown_session()
        await s2.client.stop()


@pytest.mark.cloud(timeoutMs=1000)
async def test_cloud_timeout_falls_back(cmd):
    cmd.claude.fault = "hang"
    result = await execute(cmd, "tandem.planRefactor", {"uri": (cmd.project / "calc.py").as_uri()})
    assert result["tier"] == "local" and "timeout" in result["fallbackReason"]
    assert await asyncio.to_thread(cmd.claude.wait_for_hangup, 5)


async def test_local_model_down_commands_use_the_cloud_completions_do_not(cmd):
    cmd.fake.fault = "down"
    uri = (cmd.project / "calc.py").as_uri()
    cmd.open(uri, CALC)
    assert await cmd.inline(uri, 6, 4, invoked=True) is None  # completions never go to the cloud
    result = await execute(cmd, "tandem.ask", {"prompt": "Rename the variable r to radius"})
    assert result["tier"] == "cloud" and result["markdown"] == CLOUD_REPLY
    assert len(cmd.claude.message_requests()) == 1  # only the command reached the cloud


async def test_offline_cloud_falls_back(editor, fake, project, tmp_path):
    closed = FakeAnthropicServer().start()
    closed.stop()  # nothing listens on its port any more: "no network"
    env = {"ANTHROPIC_API_KEY": "test-key", "TANDEM_STATE_DIR": str(tmp_path / "state")}
    s = await start_session(editor, fake, settings(fake, closed), env, root_uri=project.as_uri())
    try:
        result = await execute(s, "tandem.explainFailure", {"uri": (project / "calc.py").as_uri(), "failure": "boom"})
        assert result["tier"] == "local" and "offline" in result["fallbackReason"]
    finally:
        await s.client.shutdown_session()
        await s.client.stop()
