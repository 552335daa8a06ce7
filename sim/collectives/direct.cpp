#include "collectives/builder.hpp"
namespace tpsim::coll {
Schedule direct_schedule(const ScheduleRequest& r) { unsupported(r, "not implemented yet"); }
}  // namespace tpsim::coll
