export { quote, wrap } from '../core/shell.js';
