-- Storage commitment lookup for the tests: the reason is the last component of the
-- SOP instance UID (0..6, plugin enum values), except .97 (a name), .98 (garbage),
-- .99 (an error), and .50 (slow: a fifth of a second, so that the job can be canceled).
function StorageCommitmentFactory(jobId, transactionUid, sopClassUids, sopInstanceUids, remoteAet, calledAet)
   if string.match(sopInstanceUids[1], '%.77$') then
      return nil   -- use the default lookup
   end
   print('factory ' .. #sopInstanceUids .. ' ' .. remoteAet .. ' ' .. calledAet)
   return { count = #sopInstanceUids, job = jobId }
end

function StorageCommitmentLookup(handler, sopClassUid, sopInstanceUid)
   local last = string.match(sopInstanceUid, '%.(%d+)$')
   if last == '99' then
      error('lookup failed on purpose')
   elseif last == '98' then
      return { 'not', 'a', 'reason' }
   elseif last == '97' then
      return 'ClassInstanceConflict'
   elseif last == '50' then
      local start = os.clock()
      while os.clock() - start < 0.2 do end
      return 0
   end
   return tonumber(last)
end

function StorageCommitmentDestructor(handler)
   print('destructor ' .. handler.count .. ' ' .. handler.job)
end
