-- Modification on reception: every received instance is replaced by a copy whose
-- InstitutionName is set and whose OtherPatientIDs are removed.
--
--   "LuaScripts" : [ "samples/lua/modify-on-reception.lua" ]
--
-- The modified copy is uploaded by Lua, so its own OnStoredInstance sees the origin
-- "Lua" and does nothing: this is what prevents an endless loop.  The original is
-- deleted before the copy is uploaded, so that a copy that keeps the original's UIDs
-- (hence its ID) is stored rather than answered "AlreadyStored".

local INSTITUTION = 'Isengard Hospital'

function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] == 'Lua' then
    return
  end
  local command = {
    Replace = { InstitutionName = INSTITUTION },
    Remove = { 'OtherPatientIDs' },
    Force = true,
  }
  local modified = RestApiPost('/instances/' .. instanceId .. '/modify', DumpJson(command, true))
  if modified == nil then
    print('Cannot modify instance ' .. instanceId .. ', keeping it as received')
    return
  end
  RestApiDelete('/instances/' .. instanceId)
  if RestApiPost('/instances', modified) == nil then
    print('Cannot store the modified copy of instance ' .. instanceId)
  end
end
