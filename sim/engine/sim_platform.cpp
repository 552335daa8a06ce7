// SimPlatform: the Fabric as a SimGrid platform (see sim_platform.hpp).
#include "engine/sim_platform.hpp"

#include <simgrid/kernel/routing/NetPoint.hpp>
#include <simgrid/kernel/routing/NetZoneImpl.hpp>
#include <xbt/log.h>

#include <stdexcept>
#include <string>

namespace tpsim::engine {

namespace sg = simgrid::s4u;
namespace routing = simgrid::kernel::routing;
using LinkImpl = simgrid::kernel::resource::StandardLinkImpl;

namespace {

// A flat zone holding every endpoint as a host; a route is whatever the Fabric says, computed on
// demand. Host netpoints are numbered in creation order, which is the endpoint index.
class FabricZone final : public routing::NetZoneImpl {
 public:
  FabricZone(const Fabric& fabric) : NetZoneImpl("fabric"), fabric_(fabric) {}
  std::vector<LinkImpl*> links;

  void get_local_route(const routing::NetPoint* src, const routing::NetPoint* dst, routing::Route* into,
                       double* /*latency: added per step by the engine, never by SimGrid*/) override {
    scratch_.clear();
    fabric_.route(static_cast<int>(src->id()), static_cast<int>(dst->id()), scratch_);
    for (int id : scratch_) into->link_list_.push_back(links[id]);
  }

 private:
  const Fabric& fabric_;
  std::vector<int> scratch_;
};

bool g_alive = false;

}  // namespace

// SimGrid 3.32 keeps its simulated clock in this static and no API resets it: a second engine in
// the same process starts at the first one's end time. Every time SimGrid then computes is that
// offset plus a duration, rounded at the offset's magnitude, so a simulation's result would depend
// on what ran before it in the process (a sweep would differ in the last bits from `tpsim run` of
// the same plan). Resetting it between engines makes every simulation start at exactly 0. The
// symbol is bound at link time: a SimGrid without it fails to link instead of drifting silently.
extern double simgrid_engine_clock asm("_ZN7simgrid6kernel10EngineImpl4now_E");

namespace {

std::unique_ptr<sg::Engine> make_engine() {
  // Quiet SimGrid: only critical messages, and not the deadlock report (simulate() names the op).
  xbt_log_control_set("root.thres:critical");
  xbt_log_control_set("ker_engine.thres:critical ker_engine.app:file:/dev/null ker_engine.add:0");
  static std::string name = "tpsim";
  static char* argv[] = {name.data(), nullptr};
  int argc = 1;
  simgrid_engine_clock = 0.0;   // no engine is alive here (g_alive), so nothing reads it meanwhile
  auto engine = std::make_unique<sg::Engine>(&argc, argv);
  // Exact alpha-beta (tested: one transfer takes alpha + S/B): no TCP calibration factors, no
  // reverse cross-traffic, no TCP-window cap. The configuration outlives the engine and SimGrid
  // refuses to set the model twice, so this runs once per process, before the first zone.
  static bool configured = false;
  if (!configured) {
    sg::Engine::set_config("network/model:CM02");
    sg::Engine::set_config("network/crosstraffic:0");
    sg::Engine::set_config("network/TCP-gamma:0");
    sg::Engine::set_config("contexts/stack-size:64");
    configured = true;
  }
  return engine;
}

}  // namespace

SimPlatform::SimPlatform(const Fabric& fabric) : fabric_(fabric) {
  if (g_alive) throw std::logic_error("tpsim engine: one simulation at a time per process");
  engine_ = make_engine();
  g_alive = true;
  // The first zone created becomes the root zone, owned and destroyed by SimGrid's engine.
  auto* zone = new FabricZone(fabric);
  if (engine_->get_netzone_root() != zone->get_iface()) throw std::logic_error("tpsim engine: fabric zone is not the root");
  hosts_.reserve(fabric.endpoints());
  for (int e = 0; e < fabric.endpoints(); ++e) {
    const int leaf = fabric.network_endpoint(0) >= 0 ? e - fabric.network_endpoint(0) : -1;
    const int gateway = fabric.gateway_endpoint(0) >= 0 ? e - fabric.gateway_endpoint(0) : -1;
    const std::string name = e < fabric.gpus() ? "gpu" + std::to_string(e)
                             : gateway >= 0    ? "gateway" + std::to_string(gateway)
                             : leaf >= 0       ? "network" + std::to_string(leaf)
                                               : "nvswitch" + std::to_string(e - fabric.gpus());
    hosts_.push_back(zone->create_host(name, {1e12}));
  }
  zone->links.reserve(fabric.links().size());
  for (const FabricLink& l : fabric.links()) {
    sg::Link* link = zone->create_link(l.name, {l.bandwidth});
    link->set_latency(0)->seal();
    zone->links.push_back(link->get_impl());
  }
  zone->seal();
  if (sg::Engine::get_clock() != 0.0) throw std::logic_error("tpsim engine: SimGrid's clock did not start at 0");
}

SimPlatform::~SimPlatform() {
  engine_.reset();
  g_alive = false;
}

double SimPlatform::now() const { return sg::Engine::get_clock(); }

void SimPlatform::run() { engine_->run(); }

}  // namespace tpsim::engine
