module corefit.test/hello

go 1.19
