-- Test fixture: fails to load (line 4).
local ok = true

local broken = = 1
