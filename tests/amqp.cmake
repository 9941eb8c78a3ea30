# Tests of amqp/ (the Event Hubs client).
sw_add_unit_test(test_amqp_unit SOURCES unit/test_amqp_unit.c LIBS sw_amqp PkgConfig::PROTON)
