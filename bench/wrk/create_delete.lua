-- wrk script for P1's write row: every other request opens a session
-- (`POST /session`), the next one closes one of them (`DELETE
-- /session/{id}`), so both commit a change to the state store.
--   wrk ... -s bench/wrk/create_delete.lua <url>/session
-- Ids are kept per wrk thread (its connections share one Lua state).
local open = {}

function request()
  local id = table.remove(open)
  if id then
    return wrk.format("DELETE", "/session/" .. id)
  end
  return wrk.format("POST", "/session")
end

function response(status, headers, body)
  if status == 201 then
    local id = body:match('"session_id":"([^"]+)"')
    if id then
      table.insert(open, id)
    end
  end
end
