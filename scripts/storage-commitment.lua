-- Storage commitment SCP lookup: commit an instance only if it is stored here AND on a
-- backup Orthanc peer, so that a modality deletes its copy only once two copies exist.
--
-- Load it with  "LuaScripts" : [ "scripts/storage-commitment.lua" ]  and declare the peer
-- in "OrthancPeers" (its name below).  Isengard calls, for each N-ACTION request:
--   StorageCommitmentFactory(jobId, transactionUid, sopClassUids, sopInstanceUids,
--                            remoteAet, calledAet)  -> a handler (nil: default lookup)
--   StorageCommitmentLookup(handler, sopClassUid, sopInstanceUid) -> a reason
--   StorageCommitmentDestructor(handler)             -> once, when the job ends
-- Reasons, by name or number: Success (0), ProcessingFailure (1), NoSuchObjectInstance (2),
-- ResourceLimitation (3), ReferencedSOPClassNotSupported (4), ClassInstanceConflict (5),
-- DuplicateTransactionUID (6).  A lookup that raises counts as ProcessingFailure.

local BACKUP_PEER = 'backup'

local function PeerUrl()
   local peers = GetOrthancConfiguration()['OrthancPeers'] or {}
   local peer = peers[BACKUP_PEER]
   if peer == nil then
      return nil
   end
   local url = peer['Url'] or peer['URL'] or peer[1]
   if string.sub(url, -1) ~= '/' then
      url = url .. '/'
   end
   return url
end

-- The SOPInstanceUIDs the peer has, asked once per request (the factory gets all UIDs
-- up front precisely to allow such prefetching).
function StorageCommitmentFactory(jobId, transactionUid, sopClassUids, sopInstanceUids,
                                  remoteAet, calledAet)
   local url = PeerUrl()
   if url == nil then
      print('storage-commitment.lua: no peer named ' .. BACKUP_PEER .. ', default lookup used')
      return nil
   end
   local onPeer = {}
   for _, uid in ipairs(sopInstanceUids) do
      local answer = HttpPost(url .. 'tools/lookup', uid)
      if answer ~= nil and answer ~= '' then
         for _, found in ipairs(ParseJson(answer)) do
            if found['Type'] == 'Instance' then
               onPeer[uid] = true
            end
         end
      end
   end
   return { onPeer = onPeer, job = jobId }
end

function StorageCommitmentLookup(handler, sopClassUid, sopInstanceUid)
   local here = ParseJson(RestApiPost('/tools/lookup', sopInstanceUid))
   local stored = false
   for _, found in ipairs(here) do
      if found['Type'] == 'Instance' then
         local sopClass = RestApiGet('/instances/' .. found['ID'] .. '/metadata/SopClassUid')
         if sopClass ~= sopClassUid then
            return 'ClassInstanceConflict'
         end
         stored = true
      end
   end
   if not stored then
      return 'NoSuchObjectInstance'
   end
   if not handler.onPeer[sopInstanceUid] then
      return 'ResourceLimitation'   -- stored here, but not yet on the backup
   end
   return 'Success'
end

function StorageCommitmentDestructor(handler)
   print('storage-commitment.lua: job ' .. handler.job .. ' done')
end
