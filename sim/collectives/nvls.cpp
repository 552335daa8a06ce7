#include "collectives/builder.hpp"
namespace tpsim::coll {
Schedule nvls_schedule(const ScheduleRequest& r) { unsupported(r, "not implemented yet"); }
}  // namespace tpsim::coll
