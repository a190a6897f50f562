"""Lua's pattern functions, made interruptible by ``LuaCallbackTimeout``.

``string.find``, ``match``, ``gmatch`` and ``gsub`` run in C: the count hook that
enforces the deadline never fires inside them, and a backtracking pattern
(``("a"):rep(550):find((".-"):rep(3) .. "b")``) computes for minutes while it
holds the state's lock.  This chunk replaces the four functions by wrappers
that estimate the worst-case cost of each call from the subject's length and
the pattern's quantifiers:

* within :data:`PATTERN_BUDGET` steps (every ordinary call), the native
  function runs as it is, as fast as before;
* past it, the call is split into anchored attempts, one per start position,
  each made by the native function when it alone is within the budget, else by
  a port of Lua 5.3's matcher (``lstrlib.c``) written in Lua.  Lua code runs
  between the attempts and inside the port, so the hook can stop the call.

The results, captures and error messages are those of the native functions.
"""

#: Worst-case matcher steps allowed to a single native call (a few tens of milliseconds).
PATTERN_BUDGET = 20_000_000

PATTERNS = rb"""
local budget = ...
local byte, sub, strlen = string.byte, string.sub, string.len
local nativeFind, nativeMatch, nativeGmatch, nativeGsub = string.find, string.match, string.gmatch, string.gsub
local error, type, tostring, tonumber, pcall, select = error, type, tostring, tonumber, pcall, select
local tointeger, huge = math.tointeger, math.huge
local concat, pack, unpack = table.concat, table.pack, table.unpack

local MAXCAPTURES, MAXCCALLS = 32, 200
local CAP_UNFINISHED, CAP_POSITION = -1, -2
local ESC, LBRACKET, RBRACKET, CARET = 37, 91, 93, 94

-- Errors of the matcher travel as this table, so the wrapper can raise them at its caller.
local failure = {}
local function fail(message) failure.message = message; error(failure, 0) end

-- Character classes of the C locale.
local classes = {}
do
  local function set(name, test)
    local t = {}
    for c = 0, 255 do t[c] = test(c) end
    classes[name] = t
  end
  local function alpha(c) return (c >= 65 and c <= 90) or (c >= 97 and c <= 122) end
  local function digit(c) return c >= 48 and c <= 57 end
  local function graph(c) return c >= 33 and c <= 126 end
  set(97, alpha)                                                     -- a
  set(99, function(c) return c < 32 or c == 127 end)                 -- c
  set(100, digit)                                                    -- d
  set(103, graph)                                                    -- g
  set(108, function(c) return c >= 97 and c <= 122 end)              -- l
  set(112, function(c) return graph(c) and not alpha(c) and not digit(c) end)  -- p
  set(115, function(c) return c == 32 or (c >= 9 and c <= 13) end)  -- s
  set(117, function(c) return c >= 65 and c <= 90 end)               -- u
  set(119, function(c) return alpha(c) or digit(c) end)              -- w
  set(120, function(c) return digit(c) or (c >= 97 and c <= 102) or (c >= 65 and c <= 70) end)  -- x
  set(122, function(c) return c == 0 end)                            -- z (deprecated)
end

local function matchClass(c, cl)
  local t = classes[cl]
  if t then return t[c] end
  t = classes[cl + 32]  -- upper case: the complement
  if cl >= 65 and cl <= 90 and t then return not t[c] end
  return cl == c
end

-- One matching attempt at a time: the state of lstrlib.c's MatchState.
local src, srcEnd, pat, patEnd, level, depth
local capInit, capLen = {}, {}

local function classEnd(p)
  local c = byte(pat, p)
  p = p + 1
  if c == ESC then
    if p >= patEnd then fail("malformed pattern (ends with '%')") end
    return p + 1
  elseif c == LBRACKET then
    if byte(pat, p) == CARET then p = p + 1 end
    repeat
      if p >= patEnd then fail("malformed pattern (missing ']')") end
      local cc = byte(pat, p)
      p = p + 1
      if cc == ESC and p < patEnd then p = p + 1 end
    until byte(pat, p) == RBRACKET
    return p + 1
  end
  return p
end

local function matchBracketClass(c, p, ec)
  local sig = true
  if byte(pat, p + 1) == CARET then sig = false; p = p + 1 end
  p = p + 1
  while p < ec do
    local pc = byte(pat, p)
    if pc == ESC then
      p = p + 1
      if matchClass(c, byte(pat, p)) then return sig end
    elseif byte(pat, p + 1) == 45 and p + 2 < ec then  -- a range
      p = p + 2
      if pc <= c and c <= byte(pat, p) then return sig end
    elseif pc == c then
      return sig
    end
    p = p + 1
  end
  return not sig
end

local function singleMatch(s, p, ep)
  if s >= srcEnd then return false end
  local c, pc = byte(src, s), byte(pat, p)
  if pc == 46 then return true
  elseif pc == ESC then return matchClass(c, byte(pat, p + 1))
  elseif pc == LBRACKET then return matchBracketClass(c, p, ep - 1)
  end
  return pc == c
end

local match

local function matchBalance(s, p)
  if p >= patEnd - 1 then fail("malformed pattern (missing arguments to '%b')") end
  if s >= srcEnd or byte(src, s) ~= byte(pat, p) then return nil end
  local b, e, count = byte(pat, p), byte(pat, p + 1), 1
  s = s + 1
  while s < srcEnd do
    local c = byte(src, s)
    if c == e then
      count = count - 1
      if count == 0 then return s + 1 end
    elseif c == b then
      count = count + 1
    end
    s = s + 1
  end
  return nil
end

local function maxExpand(s, p, ep)
  local i = 0
  while singleMatch(s + i, p, ep) do i = i + 1 end
  while i >= 0 do
    local res = match(s + i, ep + 1)
    if res then return res end
    i = i - 1
  end
  return nil
end

local function minExpand(s, p, ep)
  while true do
    local res = match(s, ep + 1)
    if res then return res end
    if not singleMatch(s, p, ep) then return nil end
    s = s + 1
  end
end

local function startCapture(s, p, what)
  if level >= MAXCAPTURES then fail("too many captures") end
  level = level + 1
  capInit[level], capLen[level] = s, what
  local res = match(s, p)
  if not res then level = level - 1 end
  return res
end

local function endCapture(s, p)
  local l = level
  while l >= 1 and capLen[l] ~= CAP_UNFINISHED do l = l - 1 end
  if l < 1 then fail("invalid pattern capture") end
  capLen[l] = s - capInit[l]
  local res = match(s, p)
  if not res then capLen[l] = CAP_UNFINISHED end
  return res
end

local function checkCapture(l)
  l = l - 48
  if l < 1 or l > level or capLen[l] == CAP_UNFINISHED then
    fail("invalid capture index %" .. (l))
  end
  return l
end

local function matchCapture(s, l)
  l = checkCapture(l)
  local length = capLen[l]
  -- A position capture has no text: lstrlib.c's unsigned comparison fails it.
  if length >= 0 and srcEnd - s >= length
      and sub(src, capInit[l], capInit[l] + length - 1) == sub(src, s, s + length - 1) then
    return s + length
  end
  return nil
end

match = function(s, p)
  depth = depth - 1
  if depth == 0 then fail("pattern too complex") end
  while p < patEnd do
    local pc = byte(pat, p)
    local default = false
    if pc == 40 then  -- '('
      if byte(pat, p + 1) == 41 then s = startCapture(s, p + 2, CAP_POSITION)
      else s = startCapture(s, p + 1, CAP_UNFINISHED) end
      break
    elseif pc == 41 then  -- ')'
      s = endCapture(s, p + 1)
      break
    elseif pc == 36 and p + 1 == patEnd then  -- '$' at the end
      if s ~= srcEnd then s = nil end
      break
    elseif pc == ESC then
      local nc = byte(pat, p + 1)
      if nc == 98 then  -- %b
        s = matchBalance(s, p + 2)
        if not s then break end
        p = p + 4
      elseif nc == 102 then  -- %f
        p = p + 2
        if byte(pat, p) ~= LBRACKET then fail("missing '[' after '%f' in pattern") end
        local ep = classEnd(p)
        local previous = s == 1 and 0 or byte(src, s - 1)
        local current = byte(src, s) or 0
        if not matchBracketClass(previous, p, ep - 1) and matchBracketClass(current, p, ep - 1) then
          p = ep
        else
          s = nil
          break
        end
      elseif nc and nc >= 48 and nc <= 57 then  -- %0-%9
        s = matchCapture(s, nc)
        if not s then break end
        p = p + 2
      else
        default = true
      end
    else
      default = true
    end
    if default then
      local ep = classEnd(p)
      local suffix = byte(pat, ep)
      if not singleMatch(s, p, ep) then
        if suffix == 42 or suffix == 63 or suffix == 45 then  -- '*', '?', '-': accept empty
          p = ep + 1
        else
          s = nil
          break
        end
      elseif suffix == 63 then  -- '?'
        local res = match(s + 1, ep + 1)
        if res then s = res; break end
        p = ep + 1
      elseif suffix == 43 then  -- '+'
        s = maxExpand(s + 1, p, ep)
        break
      elseif suffix == 42 then  -- '*'
        s = maxExpand(s, p, ep)
        break
      elseif suffix == 45 then  -- '-'
        s = minExpand(s, p, ep)
        break
      else
        s = s + 1
        p = ep
      end
    end
  end
  depth = depth + 1
  return s
end

-- Captures of an attempt, kept as lstrlib.c keeps them: their values are taken on demand,
-- so that an unfinished capture fails only where it is used (gsub's "%2" may skip it).
local function snapshot()
  local inits, lens = {}, {}
  for i = 1, level do inits[i], lens[i] = capInit[i], capLen[i] end
  return { level = level, inits = inits, lens = lens }
end

-- The value of capture i (1-based) of the attempt that matched [s, e) of subject.
local function value(snap, i, subject, s, e)
  if i > snap.level then
    if i == 1 then return sub(subject, s, e - 1) end
    fail("invalid capture index %" .. i)
  end
  if snap.values then return snap.values[i] end
  local l = snap.lens[i]
  if l == CAP_UNFINISHED then fail("unfinished capture") end
  if l == CAP_POSITION then return snap.inits[i] end
  return sub(subject, snap.inits[i], snap.inits[i] + l - 1)
end

-- Every capture (or the whole match, when whole and none): a table with n.
local function values(snap, subject, s, e, whole)
  local n = (snap.level == 0 and whole) and 1 or snap.level
  local result = { n = n }
  for i = 1, n do result[i] = value(snap, i, subject, s, e) end
  return result
end

-- An anchored attempt at position s by the Lua matcher: the end (exclusive) and the captures.
local function luaAttempt(subject, pattern, p, s)
  src, srcEnd, pat, patEnd = subject, #subject + 1, pattern, #pattern + 1
  level, depth = 0, MAXCCALLS + 1
  local e = match(s, p)
  if not e then return nil end
  return e, snapshot()
end

-- Worst-case cost: quantified items multiply the work by the subject's length,
-- except a last item that only extends a match already found.
local analyses, analysed = {}, 0
local function analyse(pattern)
  local known = analyses[pattern]
  if known then return known end
  local factors, options, i, m = 0, 0, 1, #pattern
  local lastQuantified = false
  while i <= m do
    local c = byte(pattern, i)
    local nextIndex = i + 1
    lastQuantified = false
    if c == ESC then
      local nc = byte(pattern, i + 1)
      if nc == 98 then factors = factors + 1; nextIndex = i + 4
      elseif nc and nc >= 48 and nc <= 57 then factors = factors + 1; nextIndex = i + 2
      else nextIndex = i + 2 end
    elseif c == LBRACKET then
      local j = i + 1
      if byte(pattern, j) == CARET then j = j + 1 end
      repeat
        local cc = byte(pattern, j)
        j = j + 1
        if cc == ESC then j = j + 1 end
      until j > m or byte(pattern, j) == RBRACKET
      nextIndex = j + 1
    end
    local q = byte(pattern, nextIndex)
    if c ~= 40 and c ~= 41 and (q == 42 or q == 43 or q == 45) then
      factors = factors + 1
      lastQuantified = true
      nextIndex = nextIndex + 1
    elseif c ~= 40 and c ~= 41 and q == 63 then
      options = options + 1
      nextIndex = nextIndex + 1
    end
    i = nextIndex
    if lastQuantified then
      local rest = i
      while byte(pattern, rest) == 41 do rest = rest + 1 end
      if rest <= m then lastQuantified = false end
    end
  end
  if lastQuantified then factors = factors - 1 end
  known = { factors = factors, options = options, length = m }
  if analysed > 1000 then analyses, analysed = {}, 0 end
  analyses[pattern], analysed = known, analysed + 1
  return known
end

-- How each start position is tried: nil when one native call over all of them is within
-- the budget, else a function(position, whole) -> end (exclusive), captures, count.
local function attempter(subject, pattern, first, anchored)
  local shape = analyse(pattern)
  local n = #subject - first + 1
  local one = (shape.length + 1) * (n + 1) ^ shape.factors * 2 ^ shape.options
  if (anchored and one or one * (n + 1)) + n <= budget then return nil end
  local p = anchored and 2 or 1
  if one + n > budget then
    return function(s) return luaAttempt(subject, pattern, p, s) end
  end
  local anchoredPattern = "^" .. sub(pattern, p)
  return function(s)
    local results = pack(pcall(nativeFind, subject, anchoredPattern, s))
    -- An unfinished capture, a malformed pattern: the Lua matcher says it as lstrlib.c does.
    if not results[1] then return luaAttempt(subject, pattern, p, s) end
    if results[2] == nil then return nil end
    return results[3] + 1, { level = results.n - 3, values = { unpack(results, 4, results.n) } }
  end
end

-- posrelat of lstrlib.c, clamped to [1, len + 1]; nil when past the end.
local function startOf(init, len)
  if init > 0 then
    if init > len + 1 then return nil end
    return init
  end
  if init == 0 or -init > len then return 1 end
  return len + init + 1
end

local function integer(value)
  if value == nil then return 1 end
  local number = tonumber(value)
  return number and tointeger(number)
end

-- Raise an error of the matcher, or of a native function called here, at the caller of the
-- function that is ``level`` frames up (as lstrlib.c's errors name the line that called it).
local function raise(problem, level)
  if problem == failure then error(failure.message, level + 1) end
  if type(problem) == "string" then
    local _, ends = nativeFind(problem, "^patterns:%d+: ")
    if ends then error(sub(problem, ends + 1), level + 1) end
  end
  error(problem, 0)
end

-- Native calls go through here, never as tail calls: their errors then name a line of this
-- chunk, which raise() turns into the caller's line, as when the caller calls them itself.
local function callNative(f, ...)
  local results = pack(f(...))
  return results
end

local function pass(ok, results)
  if ok then return unpack(results, 1, results.n) end
  raise(results, 2)
end

local function plainFind(s, p, first)
  -- A plain search costs |s| * |p| at worst: search windows small enough for one native call.
  local window = budget // (#p + 1) + 1
  local position = first
  while position <= #s + 1 do
    local a, b = nativeFind(sub(s, position, position + window + #p - 1), p, 1, true)
    if a then return { a + position - 1, b + position - 1, n = 2 } end
    position = position + window
  end
  return { n = 1 }
end

local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"

-- find and match past the budget: a table of results (with n), or nil for the native call.
local function findAux(find, s, p, init, plain)
  if type(s) ~= "string" or type(p) ~= "string" then return nil end
  local i = integer(init)
  if i == nil then return nil end
  local first = startOf(i, #s)
  if first == nil then return nil end
  if find and (plain or not nativeFind(p, SPECIALS)) then
    if #s * (#p + 1) <= budget then return nil end
    return plainFind(s, p, first)
  end
  local anchored = byte(p, 1) == CARET
  local attempt = attempter(s, p, first, anchored)
  if attempt == nil then return nil end
  local ok, results = pcall(function()
    for position = first, #s + 1 do
      local e, snap = attempt(position)
      if e then
        local found = values(snap, s, position, e, not find)
        if not find then return found end
        return { position, e - 1, n = found.n + 2, unpack(found, 1, found.n) }
      end
      if anchored then break end
    end
    return { n = 1 }
  end)
  if not ok then raise(results, 3) end
  return results
end

string.find = function(s, p, init, plain)
  local results = findAux(true, s, p, init, plain)
  if results == nil then return pass(pcall(callNative, nativeFind, s, p, init, plain)) end
  return unpack(results, 1, results.n)
end

string.match = function(s, p, init)
  local results = findAux(false, s, p, init)
  if results == nil then return pass(pcall(callNative, nativeMatch, s, p, init)) end
  return unpack(results, 1, results.n)
end

string.gmatch = function(s, p)
  if type(s) ~= "string" or type(p) ~= "string" then return pass(pcall(callNative, nativeGmatch, s, p)) end
  local attempt = attempter(s, p, 1, false)
  if attempt == nil then
    local iterate = nativeGmatch(s, p)
    return function() return pass(pcall(callNative, iterate)) end
  end
  local position, lastMatch = 1, nil
  return function()
    local ok, results = pcall(function()
      while position <= #s + 1 do
        local start = position
        local e, snap = attempt(start)
        if e and e ~= lastMatch then
          position, lastMatch = e, e
          return values(snap, s, start, e, true)
        end
        position = position + 1
      end
      return { n = 0 }
    end)
    if not ok then raise(results, 2) end
    return unpack(results, 1, results.n)
  end
end

-- gsub's add_value: the text that replaces the match [s, e) of subject.
local function replacement(repl, subject, s, e, snap)
  local kind = type(repl)
  local result
  if kind == "function" then
    local all = values(snap, subject, s, e, true)
    result = repl(unpack(all, 1, all.n))
  elseif kind == "table" then
    result = repl[value(snap, 1, subject, s, e)]
  else
    repl = tostring(repl)
    local parts, i = {}, 1
    while i <= #repl do
      local c = byte(repl, i)
      if c ~= ESC then
        parts[#parts + 1] = sub(repl, i, i)
      else
        i = i + 1
        local d = byte(repl, i)
        if d == nil or d < 48 or d > 57 then
          if d ~= ESC then fail("invalid use of '%' in replacement string") end
          parts[#parts + 1] = "%"
        elseif d == 48 then
          parts[#parts + 1] = sub(subject, s, e - 1)
        else
          parts[#parts + 1] = tostring(value(snap, d - 48, subject, s, e))
        end
      end
      i = i + 1
    end
    return concat(parts)
  end
  if not result then return sub(subject, s, e - 1) end
  local vt = type(result)
  if vt ~= "string" and vt ~= "number" then fail("invalid replacement value (a " .. vt .. ")") end
  return tostring(result)
end

string.gsub = function(s, p, repl, maxN)
  local kind = type(repl)
  if type(s) ~= "string" or type(p) ~= "string"
      or (kind ~= "string" and kind ~= "number" and kind ~= "function" and kind ~= "table") then
    return pass(pcall(callNative, nativeGsub, s, p, repl, maxN))
  end
  local limit = maxN == nil and huge or integer(maxN)
  local anchored = byte(p, 1) == CARET
  local attempt = limit and attempter(s, p, 1, anchored)
  if not attempt then return pass(pcall(callNative, nativeGsub, s, p, repl, maxN)) end
  local ok, result, count = pcall(function()
    local parts, position, lastMatch, count = {}, 1, nil, 0
    while count < limit do
      local e, snap = attempt(position)
      if e and e ~= lastMatch then
        count = count + 1
        parts[#parts + 1] = replacement(repl, s, position, e, snap)
        position, lastMatch = e, e
      elseif position <= #s then
        parts[#parts + 1] = sub(s, position, position)
        position = position + 1
      else
        break
      end
      if anchored then break end
    end
    parts[#parts + 1] = sub(s, position)
    return concat(parts), count
  end)
  if not ok then raise(result, 2) end
  return result, count
end
"""
