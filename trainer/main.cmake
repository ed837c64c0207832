# The tandem-trainer binary (replaces the placeholder in trainer/CMakeLists.txt).
tandem_binary(tandem-trainer SOURCES tandem_trainer_main.cc DEPS tandem_trainer_engine tandem_common)
