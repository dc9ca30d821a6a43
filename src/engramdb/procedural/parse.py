"""Turn the JSON shapes agent frameworks produce into a `Trajectory`.

Accepted shapes (auto-detected):
- native: {"task": ..., "steps": [{"thought", "tool", "args", "observation", "error"} ...], "outcome": ..., "metrics"};
  a step may also spell the call {"action": {"tool"/"name", "args"/"arguments"/"input"}} or {"tool_call": {...}},
  and the observation "result" or "output";
- OpenAI chat messages: a list of {"role": "system"|"user"|"assistant"|"tool"} with `tool_calls` on assistant
  messages and `tool_call_id` on tool messages (or {"messages": [...], "task", "outcome"});
- Anthropic content blocks: assistant `tool_use` blocks answered by user `tool_result` blocks (`is_error`);
- LangChain intermediate steps: {"intermediate_steps": [[{"tool", "tool_input", "log"}, observation], ...]}.

The task defaults to the first user message; the outcome must be given (in the data or as an argument).
A tool result is an error when the framework says so (`is_error`, `status: "error"`) or when its text starts
with "error" / "exception" / "traceback".
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ..errors import ValidationError
from .model import Metrics, Step, Trajectory

_ERROR_TEXT = re.compile(r"^\s*(error|exception|traceback|\w+(error|exception)\b)", re.I)
FORMATS = ("auto", "native", "openai", "anthropic", "langchain")


def _fmt_error(exc: PydanticValidationError, where: str) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"{where}: " + "; ".join(parts)


def _text(content: Any) -> str | None:
    """Message content as text (strings, or lists of text blocks)."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for block in content:
            if isinstance(block, str):
                out.append(block)
            elif isinstance(block, dict) and block.get("type") in ("text", "output_text", None) and "text" in block:
                out.append(str(block["text"]))
        return "\n".join(out) if out else None
    if isinstance(content, (dict, int, float, bool)):
        return json.dumps(content, ensure_ascii=False, default=str)
    return str(content)


def _looks_like_error(text: str | None) -> bool:
    return bool(text) and bool(_ERROR_TEXT.match(text or ""))


def detect_format(data: Any) -> str:
    if isinstance(data, dict):
        if "steps" in data:
            return "native"
        if "intermediate_steps" in data:
            return "langchain"
        if "messages" in data:
            return detect_format(data["messages"])
        raise ValidationError("trajectory: expected 'steps', 'messages' or 'intermediate_steps'")
    if isinstance(data, list):
        dicts = [m for m in data if isinstance(m, dict)]
        for m in dicts:
            content = m.get("content")
            if isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in content
            ):
                return "anthropic"
        if any("role" in m for m in dicts):
            return "openai"
        raise ValidationError("trajectory: a list must be chat messages with a 'role'")
    raise ValidationError(f"trajectory: expected a JSON object or a list of messages, got {type(data).__name__}")


def _native_step(raw: Any, i: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationError(f"steps[{i}]: expected an object, got {type(raw).__name__}")
    step = dict(raw)
    for key in ("action", "tool_call"):
        call = step.get(key)
        if isinstance(call, dict):  # {"action": {"tool": ..., "args": ...}}
            step.pop(key)
            step["tool"] = call.get("tool") or call.get("name") or (call.get("function") or {}).get("name")
            step["args"] = call.get(
                "args", call.get("arguments", call.get("input", (call.get("function") or {}).get("arguments")))
            )
    if "tool_input" in step and "args" not in step:
        step["args"] = step.pop("tool_input")
    if "arguments" in step and "args" not in step:
        step["args"] = step.pop("arguments")
    for alt in ("result", "output"):
        if alt in step and "observation" not in step:
            step["observation"] = step.pop(alt)
    if isinstance(step.get("args"), str) and step.get("tool") and not step["args"].lstrip().startswith("{"):
        step["args"] = {"input": step["args"]}  # LangChain-style single string input
    for key in ("observation", "error", "thought", "action"):
        if key in step and step[key] is not None and not isinstance(step[key], str):
            step[key] = _text(step[key])
    known = {"thought", "tool", "args", "action", "observation", "error", "truncated"}
    unknown = sorted(set(step) - known)
    for key in unknown:  # tolerate framework extras (timestamps, ids), but keep the record clean
        step.pop(key)
    return step


def _from_native(data: dict[str, Any]) -> dict[str, Any]:
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise ValidationError("trajectory.steps: expected a list")
    return {"task": data.get("task"), "steps": [_native_step(s, i) for i, s in enumerate(steps)]}


def _from_openai(messages: list[Any]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    by_call: dict[str, dict[str, Any]] = {}
    task = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValidationError(f"messages[{i}]: expected an object with a 'role'")
        role = m["role"]
        content = _text(m.get("content"))
        if role == "user" and task is None:
            task = content
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            if not isinstance(calls, list):
                raise ValidationError(f"messages[{i}].tool_calls: expected a list")
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not fn.get("name"):
                    raise ValidationError(f"messages[{i}].tool_calls[{j}]: missing function.name")
                step = {"tool": fn["name"], "args": fn.get("arguments"), "thought": content if j == 0 else None}
                steps.append(step)
                by_call[str(call.get("id", f"{i}.{j}"))] = step
            if not calls and content:
                steps.append({"action": content})  # the final answer
        elif role in ("tool", "function"):
            found = by_call.get(str(m.get("tool_call_id"))) or next(
                (s for s in reversed(steps) if s.get("tool") and "observation" not in s and "error" not in s), None
            )
            if found is None:
                raise ValidationError(f"messages[{i}]: a tool result with no matching tool call")
            is_error = m.get("is_error") is True or m.get("status") == "error" or _looks_like_error(content)
            found["error" if is_error else "observation"] = content or ("error" if is_error else "")
    return {"task": task, "steps": steps}


def _from_anthropic(messages: list[Any]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    by_call: dict[str, dict[str, Any]] = {}
    task = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValidationError(f"messages[{i}]: expected an object with a 'role'")
        blocks = m.get("content")
        blocks = [{"type": "text", "text": blocks}] if isinstance(blocks, str) else (blocks or [])
        text = _text([b for b in blocks if isinstance(b, dict) and b.get("type") == "text"])
        if m["role"] == "user":
            results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
            if not results and task is None:
                task = text
            for b in results:
                step = by_call.get(str(b.get("tool_use_id")))
                if step is None:
                    raise ValidationError(f"messages[{i}]: a tool_result with no matching tool_use")
                out = _text(b.get("content")) or ""
                step["error" if b.get("is_error") or _looks_like_error(out) else "observation"] = out or "error"
        elif m["role"] == "assistant":
            uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
            for j, b in enumerate(uses):
                step = {"tool": b.get("name"), "args": b.get("input"), "thought": text if j == 0 else None}
                steps.append(step)
                by_call[str(b.get("id"))] = step
            if not uses and text:
                steps.append({"action": text})
    return {"task": task, "steps": steps}


def _from_langchain(data: dict[str, Any]) -> dict[str, Any]:
    pairs = data.get("intermediate_steps")
    if not isinstance(pairs, list):
        raise ValidationError("trajectory.intermediate_steps: expected a list of [action, observation] pairs")
    steps = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], dict):
            raise ValidationError(f"intermediate_steps[{i}]: expected [action, observation]")
        action, obs = pair
        obs_text = _text(obs)
        step = _native_step(
            {"tool": action.get("tool"), "args": action.get("tool_input"), "thought": action.get("log")}, i
        )
        step["error" if _looks_like_error(obs_text) else "observation"] = obs_text
        steps.append(step)
    if data.get("output"):
        steps.append({"action": _text(data["output"])})
    return {"task": data.get("input") or data.get("task"), "steps": steps}


def parse_trajectory(
    data: Any,
    *,
    task: str | None = None,
    outcome: object = None,
    metrics: dict[str, Any] | None = None,
    format: str = "auto",
) -> Trajectory:
    """Parse one trajectory in any accepted shape; arguments override what the data says."""
    if format not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}")
    fmt = detect_format(data) if format == "auto" else format
    wrapper = data if isinstance(data, dict) else {}
    if fmt == "native":
        if not isinstance(data, dict):
            raise ValidationError("native trajectory: expected a JSON object with 'task', 'steps', 'outcome'")
        body = _from_native(data)
    elif fmt == "langchain":
        if not isinstance(data, dict):
            raise ValidationError("langchain trajectory: expected an object with 'intermediate_steps'")
        body = _from_langchain(data)
    else:
        messages = data.get("messages") if isinstance(data, dict) else data
        if not isinstance(messages, list):
            raise ValidationError(f"{fmt} trajectory: expected a list of messages")
        body = _from_openai(messages) if fmt == "openai" else _from_anthropic(messages)
    body["task"] = task or wrapper.get("task") or body.get("task")
    if body["task"] is None:
        raise ValidationError("trajectory.task: missing (give 'task', or a first user message)")
    out = outcome if outcome is not None else wrapper.get("outcome")
    if out is None:
        raise ValidationError("trajectory.outcome: missing (success, failure or partial)")
    body["outcome"] = out
    m = metrics if metrics is not None else wrapper.get("metrics")
    if m is not None:
        if not isinstance(m, dict):
            raise ValidationError("trajectory.metrics: expected an object with steps, cost, time_s")
        body["metrics"] = {("time_s" if k == "time" else k): v for k, v in m.items()}
    if wrapper.get("source_ref") is not None:
        body["source_ref"] = wrapper["source_ref"]
    try:
        if "metrics" in body:
            Metrics.model_validate(body["metrics"])
        return Trajectory.model_validate(body)
    except PydanticValidationError as exc:
        raise ValidationError(_fmt_error(exc, "trajectory")) from exc


def make_trajectory(task: str, steps: Any, outcome: object, metrics: dict[str, Any] | None = None) -> Trajectory:
    """Build from Python values (`Step`s or step dicts in the native shape)."""
    if not isinstance(steps, list):
        raise ValidationError("steps: expected a list")
    raw = [s.model_dump() if isinstance(s, Step) else s for s in steps]
    return parse_trajectory({"task": task, "steps": raw, "outcome": outcome, "metrics": metrics}, format="native")
