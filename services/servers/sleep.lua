-- GET /sleep/MS: answer after MS milliseconds (at most a minute).  The wait
-- happens in the worker that took the request (a prefork child, a worker or
-- event thread), so for that long it serves nobody else.
function handle(r)
    local ms = math.min(tonumber(r.uri:match("^/sleep/(%d+)$")), 60000)
    r.usleep(ms * 1000)  -- a plain function (no self), in microseconds
    r.content_type = "text/plain"
    r:puts(string.format("slept %d\n", ms))
    return apache2.OK
end
