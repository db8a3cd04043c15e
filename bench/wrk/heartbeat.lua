-- wrk script for P1: `POST /session/heartbeat` with the session in the
-- X-Session-ID header. The session id is the script argument:
--   wrk ... -s bench/wrk/heartbeat.lua <url>/session/heartbeat -- <session id>
-- The request is built once per thread; every request is the same.
function init(args)
  wrk.method = "POST"
  wrk.headers["X-Session-ID"] = args[1]
  request_bytes = wrk.format()
end

function request()
  return request_bytes
end
