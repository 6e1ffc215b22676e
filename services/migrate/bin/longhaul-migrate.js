#!/usr/bin/env node
// The `longhaul-migrate` command. A committed file (not dist/), so that npm
// links it into node_modules/.bin at install time, before the build made dist/.
import "../dist/main.js";
