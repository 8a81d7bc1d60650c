#include "app/agent/config/json_log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>

#include "engine/base/time.h"

namespace sextant::agent {

void InitJsonLogging(spdlog::level::level_enum level) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_logger_mt("sextant-agent");
    logger->set_pattern("%v");
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
  });
  spdlog::set_level(level);
}

void LogEvent(spdlog::level::level_enum level, std::string_view event,
              const nlohmann::json& fields) {
  if (!spdlog::should_log(level)) return;
  nlohmann::ordered_json j;
  j["time"] = FormatRfc3339Millis(NowMs());
  j["level"] = std::string(spdlog::level::to_string_view(level).data(),
                           spdlog::level::to_string_view(level).size());
  j["event"] = std::string(event);
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
  }
  spdlog::log(level, "{}", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace sextant::agent
