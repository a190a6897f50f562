"""The interruptible pattern functions answer exactly as Lua 5.3's own (differential, in-process).

Each case runs three ways: Lua's native functions, the wrappers with the budget forced to 0
(every call goes through the Lua port of the matcher), and a small budget (anchored native
attempts).  Results, captures and error messages must agree.
"""

from __future__ import annotations

import random

import pytest
from lupa import lua53

from server.scripting.lua_patterns import PATTERNS

PROBE = b"""
local s, p, repl = ...
local out = {}
local function rec(tag, ok, ...)
  local parts = {tag, tostring(ok)}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    parts[#parts + 1] = type(v) .. ':' .. tostring(v)
  end
  out[#out + 1] = table.concat(parts, ',')
end
rec('find', pcall(string.find, s, p))
rec('find3', pcall(string.find, s, p, 3))
rec('findneg', pcall(string.find, s, p, -2))
rec('plain', pcall(string.find, s, p, 1, true))
rec('match', pcall(string.match, s, p))
rec('method', pcall(function() local r = table.pack(s:match(p)) return table.unpack(r, 1, r.n) end))
rec('gsub', pcall(string.gsub, s, p, repl))
rec('gsubf', pcall(string.gsub, s, p, function(a, b)
  if a == 'x' then return nil end
  return '<' .. tostring(a) .. '|' .. tostring(b) .. '>'
end))
rec('gsubt', pcall(string.gsub, s, p, {a = 'A', b = false}))
rec('gsub2', pcall(string.gsub, s, p, '%0%0', 2))
local ok, iterate = pcall(string.gmatch, s, p)
if ok then
  local done, problem = pcall(function()
    local n = 0
    for a, b in iterate do
      n = n + 1
      rec('gmatch', true, a, b)
      if n > 50 then break end
    end
  end)
  if not done then rec('gmatch-error', false, problem) end
end
return table.concat(out, '\\n')
"""

ATOMS = [b"a", b"b", b".", b"%a", b"%d", b"[ab]", b"[^a]", b"%%", b"x", b"[a-c]", b"%s", b"%S",
         b"%w", b"[%a_]", b"%p", b"%.", b"]", b"-"]
QUANTIFIERS = [b"", b"", b"*", b"+", b"-", b"?"]
BROKEN = [b"%", b"[a", b"%b", b"%f", b"(", b")", b"%9"]


def _probe(budget: int | None):
    lua = lua53.LuaRuntime(encoding=None)
    if budget is not None:
        install = lua.eval(b"function(source, budget) assert(load(source, '=patterns', 't'))(budget) end")
        install(PATTERNS, budget)
    return lua.eval(b"function(...) " + PROBE + b" end")


def _pattern(rng: random.Random) -> bytes:
    parts = [b"^"] if rng.random() < 0.2 else []
    depth = 0
    for _ in range(rng.randint(0, 5)):
        x = rng.random()
        if x < 0.1:
            parts.append(b"(")
            depth += 1
        elif x < 0.18 and depth:
            parts.append(b")")
            depth -= 1
        elif x < 0.21:
            parts.append(b"()")
        elif x < 0.24:
            parts.append(b"%b()")
        elif x < 0.27:
            parts.append(b"%f[%w]")
        elif x < 0.30:
            parts.append(b"%1")
        else:
            parts.append(rng.choice(ATOMS) + rng.choice(QUANTIFIERS))
    if rng.random() < 0.1:
        parts.append(b")" * depth)
    if rng.random() < 0.15:
        parts.append(b"$")
    if rng.random() < 0.03:
        parts.append(rng.choice(BROKEN))
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_wrappers_answer_as_native_functions(seed: int) -> None:
    native, ported, anchored = _probe(None), _probe(0), _probe(50)
    rng = random.Random(seed)
    for _ in range(1500):
        subject = bytes(rng.choice(b"aabbx1 (.)_-]%") for _ in range(rng.randint(0, 14)))
        pattern = _pattern(rng)
        repl = rng.choice([b"[%0]", b"%1-", b"%%", b"z", b"%2", b"%x"])
        expected = native(subject, pattern, repl)
        assert ported(subject, pattern, repl) == expected, (subject, pattern, repl)
        assert anchored(subject, pattern, repl) == expected, (subject, pattern, repl)


def test_ordinary_calls_stay_native() -> None:
    """Within the budget the native function runs (a 1 MB gsub stays fast)."""
    lua = lua53.LuaRuntime(encoding=None)
    lua.eval(b"function(source) assert(load(source, '=patterns', 't'))(20000000) end")(PATTERNS)
    count = lua.execute(b'local s = string.rep("ab ", 350000) local _, n = s:gsub("%s+", "") return n')
    assert count == 350000
