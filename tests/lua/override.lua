-- Loaded after callbacks.lua: the later definition of a callback wins.
function OnDeletedInstance(id)
  table.insert(seen, { 'OnDeletedInstance (override)', id })
end
