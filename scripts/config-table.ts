// Prints the README's configuration table (paste between the config-table markers).
import { configTable } from "../provider/config-doc.js";

console.log(configTable());
