// Structured logs for the agent: one JSON object per line on stderr,
//   {"time":"2026-11-29T01:02:03.456Z","level":"info","event":"listening","grpc":"0.0.0.0:7443"}
// through spdlog (pattern "%v"; the object is built here so every value is escaped).
// Never log a prompt or an output: events carry identities, names, digests and figures.
// Thread-safety: safe from any thread once InitJsonLogging has run (spdlog loggers are).
#pragma once

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string_view>

namespace sextant::agent {

// Installs the JSON stderr logger as spdlog's default. Idempotent.
void InitJsonLogging(spdlog::level::level_enum level = spdlog::level::info);
void LogEvent(spdlog::level::level_enum level, std::string_view event,
              const nlohmann::json& fields = nlohmann::json::object());

}  // namespace sextant::agent
