-- Auto-routing: every instance that arrives (over DICOM or REST) is forwarded to the
-- modality "pacs" of "DicomModalities", then deleted here once the PACS has it.
--
--   "DicomModalities" : { "pacs" : [ "PACS", "192.168.0.10", 104 ] },
--   "LuaScripts" : [ "samples/lua/auto-routing.lua" ]
--
-- Instances created by Lua itself (origin "Lua") are left alone.

local TARGET = 'pacs'

function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] == 'Lua' then
    return
  end
  -- A synchronous C-STORE: RestApiPost answers nil when the transfer fails.
  local sent = RestApiPost('/modalities/' .. TARGET .. '/store', instanceId)
  if sent == nil then
    print('Auto-routing: cannot send ' .. instanceId .. ' to ' .. TARGET .. ', keeping it')
    return
  end
  RestApiDelete('/instances/' .. instanceId)
end
