// One line of a reference CSV as its comma-separated cells (the readers of data/reference/ share it).
#pragma once

#include <sstream>
#include <string>
#include <vector>

inline std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
  return cells;
}
