// SimPlatform: one SimGrid engine holding one Fabric. It sets the options that make SimGrid's
// network exact alpha-beta (CM02, no cross-traffic, no TCP-gamma) before the first zone, silences
// SimGrid's logs, and routes through a custom zone that asks the Fabric for each route, so building
// 4096 GPUs stores no N^2 route table. One SimPlatform may live at a time in a process; several in
// sequence are fine: each starts SimGrid's clock at 0, so a result never depends on an earlier run.
#pragma once

#include <memory>
#include <vector>

#include <simgrid/s4u.hpp>

#include "engine/fabric.hpp"

namespace tpsim::engine {

class SimPlatform {
 public:
  explicit SimPlatform(const Fabric& fabric);   // throws std::logic_error if another one is alive
  ~SimPlatform();
  SimPlatform(const SimPlatform&) = delete;
  SimPlatform& operator=(const SimPlatform&) = delete;

  const Fabric& fabric() const { return fabric_; }
  simgrid::s4u::Host* host(int endpoint) const { return hosts_[endpoint]; }
  double now() const;   // simulated seconds since this platform was built
  void run();           // runs every actor to completion

 private:
  const Fabric& fabric_;
  std::unique_ptr<simgrid::s4u::Engine> engine_;
  std::vector<simgrid::s4u::Host*> hosts_;
};

}  // namespace tpsim::engine
