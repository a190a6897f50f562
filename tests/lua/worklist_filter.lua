-- IncomingWorklistRequestFilter: each modality sees only its own worklists (what the
-- worklists plugin's FilterIssuerAet does), and a query for "*RESTRICTED*" patients is
-- rewritten to ask for nobody.
function IncomingWorklistRequestFilter(query, origin)
  query['0040,0100'][1]['0040,0001'] = origin['RemoteAet']
  if query['0010,0010'] == '*RESTRICTED*' then
    query['0010,0010'] = 'NOBODY'
  end
  return query
end
