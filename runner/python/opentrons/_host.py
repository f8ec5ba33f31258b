"""Called by runrec's runner (runner/src/python_host.cpp): inspect a protocol before it
runs, execute its run(), and describe an exception for the log. Not part of the API."""
import ast
import builtins
import linecache
import re
import sys
import time
import traceback

import _runrec

MAX_API_MINOR = _runrec.MAX_API_MINOR


def _literal(node, name, what):
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        raise ValueError(f"{name}:{node.lineno}: `{what}` must be a literal dict (runrec reads it without running the file)")
    if not isinstance(value, dict):
        raise ValueError(f"{name}:{node.lineno}: `{what}` must be a dict, got {type(value).__name__}")
    return value


def inspect(text, name):
    """Checks a protocol without running it. Returns metadata, requirements and the API level;
    raises ValueError with a message for the user."""
    try:
        tree = ast.parse(text, filename=name)
        compile(tree, name, "exec")
    except SyntaxError as e:
        where = f"{name}:{e.lineno}" + (f":{e.offset}" if e.offset else "")
        source = f"\n    {e.text.rstrip()}" if e.text and e.text.strip() else ""
        raise ValueError(f"{where}: syntax error: {e.msg}{source}")
    except ValueError as e:  # e.g. null bytes
        raise ValueError(f"{name}: not a Python protocol: {e}")
    metadata, requirements, has_run = {}, {}, False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
            has_run = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "metadata" and node.value is not None:
                    metadata = _literal(node.value, name, "metadata")
                elif isinstance(t, ast.Name) and t.id == "requirements" and node.value is not None:
                    requirements = _literal(node.value, name, "requirements")
                elif isinstance(t, ast.Name) and t.id == "run":
                    has_run = True
        elif isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == "run" for a in node.names):
            has_run = True
    if not has_run:
        raise ValueError(f"{name}: no run() function: a Python protocol defines `def run(protocol):` at top level")
    level = requirements.get("apiLevel", metadata.get("apiLevel"))
    if level is None:
        raise ValueError(f"{name}: no apiLevel: set it in `metadata` or `requirements`, e.g. "
                         f"requirements = {{\"robotType\": \"OT-2\", \"apiLevel\": \"2.13\"}} "
                         f"(Protocol API v1 protocols are not supported)")
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(level))
    if not m:
        raise ValueError(f"{name}: apiLevel {level!r} is not a version like \"2.13\"")
    major, minor = int(m.group(1)), int(m.group(2))
    if major != 2 or minor > MAX_API_MINOR:
        raise ValueError(f"{name}: apiLevel \"{level}\" is not supported: runrec runs Protocol API 2.0 to 2.{MAX_API_MINOR}")
    robot = str(requirements.get("robotType", metadata.get("robotType", "OT-2")))
    if robot not in ("OT-2", "OT-2 Standard"):
        raise ValueError(f"{name}: robotType \"{robot}\" is not supported: runrec drives the OT-2")
    return {"metadata": _jsonable(metadata), "requirements": _jsonable(requirements),
            "apiLevel": f"{major}.{minor}", "apiMajor": major, "apiMinor": minor}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


_SLEEP_SLICE = 0.05  # s


def _sleep_in_slices(real_sleep):
    """time.sleep for the protocol: the same wait, in slices of at most 50 ms. A stop raises
    RunStopped in the protocol's thread between two bytecodes; one long C-level sleep would
    hold it back until it returned, a slice only until the slice ends."""
    def sleep(seconds):
        seconds = float(seconds)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            real_sleep(min(left, _SLEEP_SLICE))
    sleep.__doc__ = real_sleep.__doc__
    return sleep


def execute(text, filename, major, minor, _unused=None):
    """Runs the protocol: executes the file, then run(protocol). Output of print() goes to
    stderr (stdout belongs to runrec: --json summaries, G-code). While it runs, time.sleep
    waits in slices, so that a stop interrupts it."""
    from .protocol_api._api import ProtocolContext, APIVersion, _reset_ids
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    code = compile(text, filename, "exec")
    globs = {"__name__": "__protocol__", "__file__": filename, "__builtins__": builtins}
    saved = sys.stdout
    sys.stdout = sys.stderr
    real_sleep = time.sleep
    time.sleep = _sleep_in_slices(real_sleep)
    try:
        exec(code, globs)
        run = globs.get("run")
        if not callable(run):
            raise TypeError("the protocol's `run` is not a function")
        _reset_ids()
        ctx = ProtocolContext(APIVersion(major, minor))
        run(ctx)
    finally:
        time.sleep = real_sleep
        sys.stdout.flush()
        sys.stdout = saved


def describe_exception(exc, filename):
    """The error recorded when the protocol raised: type, message with the protocol's line,
    and the traceback."""
    tb = exc.__traceback__
    line = None
    for frame in traceback.extract_tb(tb):
        if frame.filename == filename:
            line = frame.lineno
    kind = type(exc).__name__
    if isinstance(exc, SystemExit):
        message = f"the protocol called sys.exit({exc.code!r})"
    else:
        text = str(exc)
        message = f"{kind}: {text}" if text else kind
    if line is not None:
        message += f" (line {line})"
    return {
        "errorType": "PythonException",
        "message": message,
        "details": {
            "exceptionType": kind,
            "line": line,
            "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
        },
    }
