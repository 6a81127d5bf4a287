# The real Sidekiq worker the cronlease Sidekiq target test drives (Debian's ruby-sidekiq 6.4).
#
#   REDIS_URL=redis://127.0.0.1:PORT/0 CRONLEASE_EXECUTED=/tmp/executed.jsonl \
#     sidekiq -r ./worker.rb -q jobs -c 1 -t 5
#
# Optional: SIDEKIQ_NAMESPACE=ns (keys `ns:queue:jobs`, needs ruby-redis-namespace);
# CRONLEASE_READY=/path: written once the server has started.
#
# Each job appends one JSON line: its jid (the run id: Sidekiq's job id IS cronlease's run id),
# the fire time from the job's `cronlease` hash, and the arguments perform was called with.
require "json"
require "sidekiq"

# Debian pairs Sidekiq 6.4 with redis-rb 4.8, which warns on every BRPOP Sidekiq 6.4 makes.
Redis.silence_deprecations = true

# Sidekiq 6.4 hands a worker only its jid (processor.rb `worker.jid = job_hash["jid"]`); the
# rest of the job hash reaches server middleware only, so this one passes the run's fields on.
class CronleaseMiddleware
  def call(worker, job, _queue)
    worker.cronlease = job["cronlease"] if worker.respond_to?(:cronlease=)
    yield
  end
end

redis = {url: ENV.fetch("REDIS_URL")}
redis[:namespace] = ENV["SIDEKIQ_NAMESPACE"] if ENV["SIDEKIQ_NAMESPACE"]

Sidekiq.configure_server do |config|
  config.redis = redis
  config.server_middleware { |chain| chain.add CronleaseMiddleware }
  config.on(:startup) do
    ready = ENV["CRONLEASE_READY"]
    File.write(ready, "ready\n") if ready
  end
end

Sidekiq.configure_client do |config|
  config.redis = redis
end

class TickWorker
  include Sidekiq::Worker
  attr_accessor :cronlease

  def perform(*args)
    line = JSON.dump({
      "jid" => jid,
      "fire_time" => cronlease && cronlease["fire_time"],
      "cronlease" => cronlease,
      "args" => args
    })
    File.open(ENV.fetch("CRONLEASE_EXECUTED"), "a") { |f| f.puts(line) }
  end
end
