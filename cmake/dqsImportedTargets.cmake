# Defines the imported targets dqs::Random123 (header-only) and dqs::lemon (LEMON's config file sets
# only variables). Expects LEMON_LIBRARY / LEMON_INCLUDE_DIR from find_package(lemon). Used in the
# source tree and, installed, by dqsConfig.cmake.
if(NOT TARGET dqs::Random123)
  find_path(DQS_RANDOM123_INCLUDE_DIR Random123/philox.h)
  if(NOT DQS_RANDOM123_INCLUDE_DIR)
    message(FATAL_ERROR "dqs: Random123 headers not found (Debian package librandom123-dev)")
  endif()
  add_library(dqs::Random123 INTERFACE IMPORTED)
  set_target_properties(dqs::Random123 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${DQS_RANDOM123_INCLUDE_DIR}")
endif()

if(NOT TARGET dqs::lemon)
  add_library(dqs::lemon UNKNOWN IMPORTED)
  set_target_properties(dqs::lemon PROPERTIES
    IMPORTED_LOCATION "${LEMON_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LEMON_INCLUDE_DIR}")
endif()
