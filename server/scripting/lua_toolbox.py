"""The Lua side of Orthanc's Lua API, run once in every Lua state before the user scripts.

The chunk receives the Python implementations (``api``: the public functions,
``internal``: ``Print`` and ``Interrupted``) and keeps them in local upvalues:
scripts only ever see the Lua closures defined here.  Each API implementation
takes the number of arguments first (``RestApi*`` need it for Orthanc's
``builtin`` quirk) and returns ``true, value`` or ``false, message``; the
closure turns the latter into a Lua error at the caller's line.
"""

TOOLBOX = rb"""
local api, internal, hookCount = ...
local error, select, tostring, type, pairs = error, select, tostring, type, pairs
local rawPcall, rawXpcall, rawLoad, rawLoadfile = pcall, xpcall, load, loadfile
local sethook, traceback = debug.sethook, debug.traceback
local cocreate, coresume = coroutine.create, coroutine.resume
local pack, unpack = table.pack, table.unpack
local emit, interrupted = internal.Print, internal.Interrupted

-- Deadline of the running callback (LuaCallbackTimeout), checked every hookCount instructions.
local function hook()
  local message = interrupted()
  if message then error(message, 2) end
end
sethook(hook, "", hookCount)

local function rethrowIfInterrupted(...)
  local message = interrupted()
  if message then error(message, 0) end
  return ...
end

pcall = function(...) return rethrowIfInterrupted(rawPcall(...)) end
xpcall = function(...) return rethrowIfInterrupted(rawXpcall(...)) end

coroutine.create = function(f)
  local co = cocreate(f)
  sethook(co, hook, "", hookCount)
  return co
end

coroutine.wrap = function(f)
  local co = coroutine.create(f)
  return function(...)
    local results = pack(coresume(co, ...))
    if results[1] then return unpack(results, 2, results.n) end
    error(results[2], 0)
  end
end

-- Source text only: binary chunks can crash the virtual machine.
load = function(chunk, name, mode, env) return rawLoad(chunk, name, "t", env) end
loadfile = function(path, mode, env) return rawLoadfile(path, "t", env) end
dofile = function(path)
  local f, message = rawLoadfile(path, "t")
  if not f then error(message, 2) end
  return f()
end

-- No way to the Python bridge, to native code, to upvalues, nor out of the server.
python = nil
package.loaded.python = nil
package.loadlib = nil
package.cpath = ""
package.searchers[4] = nil
package.searchers[3] = nil
os.exit = nil
debug = { traceback = traceback }
package.loaded.debug = debug

function print(...)
  local line = ""
  for i = 1, select("#", ...) do
    local s = tostring((select(i, ...)))
    if #line > 0 then line = line .. ", " end
    line = line .. s
  end
  emit(line)
end

-- Recursively print a value (Orthanc's toolbox): "[key] [key] ... type value" lines.
function PrintRecursive(s, l, i)
  l = l or 100
  i = i or ""
  if l < 1 then
    print("ERROR: Item limit reached.")
    return l - 1
  end
  local ts = type(s)
  if ts ~= "table" then
    print(i, ts, s)
    return l - 1
  end
  print(i, ts)
  for k, v in pairs(s) do
    l = PrintRecursive(v, l, i .. "\t[" .. tostring(k) .. "]")
    if l < 0 then break end
  end
  return l
end

local function unwrap(ok, value)
  if ok then return value end
  error(value, 3)
end

-- Orthanc (0.8+) collects the routing helpers' operations of OnStoredInstance and OnStable*
-- in the table of _InitializeJob/_AccessJob, then runs them as a job.  Here the helpers run
-- at once; the table records what they did, in Orthanc's form, for the scripts that read it.
local insert = table.insert
function _InitializeJob() _job = {} end
function _AccessJob() return _job end

local operations = {
  SendToModality = function(resource, modality, localAet)
    return { Operation = "store-scu", Resource = resource, Modality = modality, LocalAet = localAet }
  end,
  SendToPeer = function(resource, peer)
    return { Operation = "store-peer", Resource = resource, Peer = peer }
  end,
  Delete = function(resource) return { Operation = "delete", Resource = resource } end,
  ModifyInstance = function(resource, replace, remove, removePrivateTags)
    return { Operation = "modify", Resource = resource, Replace = replace, Remove = remove,
             RemovePrivateTags = removePrivateTags }
  end,
}

for name, implementation in pairs(api) do
  local operation = operations[name]
  _G[name] = function(...)
    local value = unwrap(implementation(select("#", ...), ...))
    if operation and type(_job) == "table" then insert(_job, operation(...)) end
    return value
  end
end

print("Lua toolbox installed")
"""
