-- Job events: logs the end of every job, and posts a JSON webhook when a job fails.
--
-- Install it with  "LuaScripts" : [ "scripts/job-events.lua" ]  and, for the webhook,
--   "LuaJobEventsWebhook" : "https://chat.example.org/hooks/isengard"
-- (absent or empty: no webhook).  The webhook receives a POST with a JSON body:
--   {"Event":"JobFailure","JobId":"...","Type":"DicomModalityStore","ErrorCode":9,
--    "ErrorDescription":"...","ErrorDetails":"...","CreationTime":"...","Server":"..."}
-- A webhook that cannot be reached is logged and otherwise ignored.

local function describeJob(jobId)
  local answer = RestApiGet('/jobs/' .. jobId)
  if answer == nil then
    return {}
  end
  return ParseJson(answer) or {}
end

local function webhookUrl()
  local url = GetOrthancConfiguration()['LuaJobEventsWebhook']
  if url == nil or url == '' then
    return nil
  end
  return url
end

function OnJobSuccess(jobId)
  local job = describeJob(jobId)
  print('Job ' .. jobId .. ' (' .. tostring(job['Type']) .. ') has succeeded')
end

function OnJobFailure(jobId)
  local job = describeJob(jobId)
  print('Job ' .. jobId .. ' (' .. tostring(job['Type']) .. ') has failed: ' ..
        tostring(job['ErrorDescription']) .. ' ' .. tostring(job['ErrorDetails'] or ''))

  local url = webhookUrl()
  if url == nil then
    return
  end
  local document = {
    Event = 'JobFailure',
    JobId = jobId,
    Type = job['Type'],
    ErrorCode = job['ErrorCode'],
    ErrorDescription = job['ErrorDescription'],
    ErrorDetails = job['ErrorDetails'],
    CreationTime = job['CreationTime'],
    Server = GetOrthancConfiguration()['Name'],
  }
  local answer = HttpPost(url, DumpJson(document), { ['Content-Type'] = 'application/json' })
  if answer == nil then
    print('Job ' .. jobId .. ': the failure webhook ' .. url .. ' could not be reached')
  end
end
