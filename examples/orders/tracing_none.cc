// --trace in a build without catga::otel: off only.
#include "tracing.hpp"

namespace orders {

std::vector<std::string> TraceExport::modes() { return {"off"}; }

catga::Result<std::unique_ptr<TraceExport>> TraceExport::start(const std::string& mode) {
  if (mode == "off") return std::unique_ptr<TraceExport>();
  return catga::Error{catga::Code::invalid_argument,
                      "--trace " + mode + ": this build has no tracing (catga::otel needs opentelemetry-cpp)"};
}

}  // namespace orders
