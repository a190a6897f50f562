-- Test fixture run by both Isengard and the real Orthanc: what the callbacks receive.
stored = {}

function OnStoredInstance(instanceId, tags, metadata, origin)
  stored[instanceId] = {
    tags = DumpJson(tags, true),
    metadata = DumpJson(metadata, true),
    origin = DumpJson(origin, true),
  }
end

function ReceivedInstanceFilter(dicom, origin, info)
  print('DIFFERENTIAL-FILTER ' .. DumpJson({ dicom['SOPInstanceUID'], origin, info }, true))
  return true
end
