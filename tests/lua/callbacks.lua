-- Test fixture: every callback records its arguments.  Main-state callbacks append
-- to the global `seen` (read through /tools/execute-script); the filters, which run
-- in the filter state, print theirs ("FILTER ..." lines of the log).

seen = {}

local function record(...)
  table.insert(seen, { ... })
end

function Initialize()
  record('Initialize')
end

function Finalize()
  print('FINALIZE has run')
end

function OnHeartBeat()
  heartbeats = (heartbeats or 0) + 1
end

function OnStoredInstance(instanceId, tags, metadata, origin)
  local patient = tags['PatientID']
  if patient == 'LOOP' then
    while true do end
  elseif patient == 'ERROR' then
    error('this callback fails on purpose')
  elseif patient == 'SLOW' then
    HttpGet(slowUrl)
  elseif patient == 'SELF-HTTP' then
    -- HTTP to this very server, whose IncomingHttpRequestFilter needs this state's lock.
    local port = math.tointeger(GetOrthancConfiguration()['HttpPort'])
    local answer = HttpGet('http://127.0.0.1:' .. port .. '/instances/' .. instanceId)
    record('SelfHttp', instanceId, answer and ParseJson(answer)['ID'] or 'nil')
  end
  record('OnStoredInstance', instanceId, tags, metadata, origin)
  -- In-process REST from an event callback must not deadlock.
  local self = ParseJson(RestApiGet('/instances/' .. instanceId))
  record('LookupFromOnStoredInstance', self and self['ID'] or 'nil')
end

for _, level in ipairs({ 'Patient', 'Study', 'Series' }) do
  _G['OnStable' .. level] = function(id, tags, metadata)
    record('OnStable' .. level, id, tags, metadata)
  end
end

for _, level in ipairs({ 'Patient', 'Study', 'Series', 'Instance' }) do
  _G['OnDeleted' .. level] = function(id) record('OnDeleted' .. level, id) end
  _G['OnUpdated' .. level] = function(id) record('OnUpdated' .. level, id) end
end

function OnJobSubmitted(jobId)
  record('OnJobSubmitted', jobId)
end

function OnJobSuccess(jobId)
  local job = ParseJson(RestApiGet('/jobs/' .. jobId))
  record('OnJobSuccess', jobId, job['Type'], job['State'])
end

function OnJobFailure(jobId)
  local job = ParseJson(RestApiGet('/jobs/' .. jobId))
  record('OnJobFailure', jobId, job['Type'], job['State'])
end

function IncomingHttpRequestFilter(method, uri, ip, username, headers)
  if uri == '/forbidden-by-lua' then
    return false
  elseif uri == '/filter-error' then
    error('the HTTP filter fails on purpose')
  elseif uri == '/filter-calls-rest' then
    return RestApiGet('/system') ~= nil
  elseif string.sub(uri, 1, 12) == '/record-http' then
    record('IncomingHttpRequestFilter', method, uri, ip, username, headers)
  end
  return true
end

function IncomingFindRequestFilter(source, origin)
  record('IncomingFindRequestFilter', source, origin)
  local query = {}
  for tag, value in pairs(source) do
    query[tag] = value
  end
  if query['0010,0010'] == 'REWRITTEN-BY-LUA' then
    query['0010,0010'] = 'FIND-TARGET'
  end
  return query
end

function ReceivedInstanceFilter(dicom, origin, info)
  print('FILTER ReceivedInstanceFilter ' .. DumpJson({ dicom['PatientID'] or '', origin, info }, true))
  if dicom['PatientID'] == 'FILTER-UPLOADS' then
    -- Uploads from inside the filter, whose own ReceivedInstanceFilter needs this state's lock.
    local file = RestApiGet('/instances/' .. dicom['StudyDescription'] .. '/file')
    local port = math.tointeger(GetOrthancConfiguration()['HttpPort'])
    local viaRest = ParseJson(RestApiPost('/instances', file))['Status']
    local viaHttp = ParseJson(HttpPost('http://127.0.0.1:' .. port .. '/instances', file))['Status']
    print('FILTER nested uploads: ' .. viaRest .. ' ' .. viaHttp)
  end
  if dicom['PatientID'] == 'FILTER-SEES-MAIN' then
    -- The two states do not share globals: this one is set in the main state only.
    return mainOnly == nil
  end
  return dicom['PatientID'] ~= 'REFUSED-BY-LUA'
end

function ReceivedCStoreInstanceFilter(dicom, origin, info)
  print('FILTER ReceivedCStoreInstanceFilter ' .. DumpJson({ dicom['PatientID'] or '', origin, info }, true))
  if dicom['PatientID'] == 'DIMSE-A702' then
    return 0xA702
  end
  return 0
end
