-- Conditional routing: once a study is complete (no new instance for "StableAge"
-- seconds), send it to the archive that matches its modality, e.g.
--
--   "DicomModalities" : { "ct-archive" : [ "CTARCH", "10.0.0.5", 104 ],
--                         "mr-archive" : [ "MRARCH", "10.0.0.6", 104 ] },
--   "LuaScripts" : [ "samples/lua/conditional-routing.lua" ]
--
-- Studies whose modalities have no route, and studies from the source AET
-- "TEST", stay here only.

local ROUTES = { CT = 'ct-archive', MR = 'mr-archive' }
local IGNORED_SOURCES = { TEST = true }

local function seriesOf(studyId)
  local answer = RestApiGet('/studies/' .. studyId .. '/series')
  if answer == nil then
    return {}
  end
  return ParseJson(answer)
end

function OnStableStudy(studyId, tags, metadata)
  local targets = {}
  for _, series in ipairs(seriesOf(studyId)) do
    local source = RestApiGet('/series/' .. series['ID'] .. '/metadata/RemoteAET')
    local target = ROUTES[series['MainDicomTags']['Modality'] or '']
    if target ~= nil and not IGNORED_SOURCES[source or ''] then
      targets[target] = true
    end
  end
  for target in pairs(targets) do
    local job = RestApiPost('/modalities/' .. target .. '/store',
                            DumpJson({ Resources = { studyId }, Asynchronous = true }, true))
    print('Study ' .. studyId .. ' (' .. tostring(tags['StudyDescription']) .. ') -> ' .. target ..
          ': ' .. (job and ParseJson(job)['ID'] or 'not sent'))
  end
end
