/**
 * SQL conformance: scripts of statements with their expected results (rows,
 * row counts or SQLSTATEs), run in order on a fresh database.
 *
 * - `shared` uses syntax both dialects parse; it runs once as PostgreSQL and
 *   once as MySQL, on separate clusters.
 * - `postgresOnly` and `mysqlOnly` cover each dialect's own syntax and
 *   semantics ($n and ? parameters, ::casts, ||, ON CONFLICT vs ON DUPLICATE
 *   KEY UPDATE, RETURNING, integer division, NULL ordering, CONCAT).
 * - Every error leaves the database usable: the next case runs on it.
 * - The catalog and the data survive a close and reopen (the last script
 *   runs after a restart).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster } from '../engine/index.js'
import { kvOptions } from './helpers/kv-helpers.js'
import { cleanupTempDirs, err, ok, q, qu, runCases, withSql, type Case } from './helpers/sql-helpers.js'

test.after(() => cleanupTempDirs())

const shared = (d: 'postgres' | 'mysql'): Case[] => [
  // DDL
  ok('CREATE TABLE emp (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, dept VARCHAR(10), salary INT, bonus DECIMAL(10,2), active BOOLEAN DEFAULT TRUE)'),
  err('CREATE TABLE emp (id INT)', '42P07', /already exists/),
  ok('CREATE TABLE IF NOT EXISTS emp (id INT)'),
  ok('CREATE TABLE dept (code VARCHAR(10) PRIMARY KEY, title TEXT, floor INT)'),
  ok('CREATE TABLE nokey (a INT, b TEXT)'),
  ok('CREATE TABLE pair (x INT, y INT, v TEXT, PRIMARY KEY (x, y))'),
  ok('CREATE TABLE uq (id INT PRIMARY KEY, email VARCHAR(40) UNIQUE, n INT NOT NULL)'),
  err('CREATE TABLE bad (a INT, a INT)', '42701'),
  err('CREATE TABLE bad2 (a INT, PRIMARY KEY (zz))', '42703'),
  err('CREATE TABLE bad3 (a TIME)', '0A000', /type/i),
  // INSERT
  ok("INSERT INTO emp (id, name, dept, salary, bonus) VALUES (1, 'ada', 'eng', 120, 10.50)", 1),
  ok("INSERT INTO emp (id, name, dept, salary, bonus) VALUES (2, 'bob', 'eng', 100, NULL), (3, 'cy', 'ops', 90, 5), (4, 'di', NULL, NULL, 0)", 3),
  ok("INSERT INTO emp (id, name, dept, salary, bonus, active) VALUES (5, 'ed', 'ops', 95, 1.25, FALSE)", 1),
  ok("INSERT INTO emp (id, name, dept, salary) VALUES (6, 'flo', 'sales', 70)", 1),
  err("INSERT INTO emp (id, name) VALUES (1, 'dup')", '23505', /emp_pkey/),
  err('INSERT INTO emp (id, name) VALUES (7, NULL)', '23502', /name/),
  err("INSERT INTO emp (id) VALUES (8)", '23502', /name/),
  err("INSERT INTO emp (id, name) VALUES (9, 'this name is far too long for twenty')", '22001'),
  err("INSERT INTO emp (id, name, salary) VALUES (10, 'x', 'abc')", '22P02', /integer/),
  err("INSERT INTO emp (id, nope) VALUES (11, 1)", '42703', /nope/),
  err("INSERT INTO nosuch VALUES (1)", '42P01', /nosuch/),
  err("INSERT INTO emp (id, name) VALUES (12)", '42601'),
  err("INSERT INTO emp (id, name, salary) VALUES (13, 'big', 3000000000)", '22003'),
  ok("INSERT INTO dept VALUES ('eng', 'Engineering', 3), ('ops', 'Operations', 1), ('hr', 'People', 2)", 3),
  ok("INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (2, NULL)", 3),
  ok("INSERT INTO pair VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c'), (-1, 5, 'd')", 4),
  err("INSERT INTO pair VALUES (1, 2, 'again')", '23505', /pair_pkey/),
  ok("INSERT INTO uq VALUES (1, 'a@x', 1), (2, 'b@x', 2), (3, NULL, 3), (4, NULL, 4)", 4),
  err("INSERT INTO uq VALUES (5, 'a@x', 5)", '23505', /email/),
  // point and range reads
  q('SELECT name FROM emp WHERE id = 3', [['cy']]),
  q('SELECT name FROM emp WHERE id = 99', []),
  q('SELECT id, name FROM emp WHERE id IN (5, 1, 3) ORDER BY id', [[1, 'ada'], [3, 'cy'], [5, 'ed']]),
  q('SELECT id FROM emp WHERE id > 2 AND id <= 5 ORDER BY id', [[3], [4], [5]]),
  q('SELECT id FROM emp WHERE id BETWEEN 2 AND 4 ORDER BY id DESC', [[4], [3], [2]]),
  q('SELECT id FROM emp WHERE id >= 5 ORDER BY id', [[5], [6]]),
  q('SELECT id FROM emp WHERE id < 2.5 ORDER BY id', [[1], [2]]),
  q('SELECT id FROM emp WHERE id = 2.5', []),
  q("SELECT id FROM emp WHERE id = '4'", [[4]]),
  q('SELECT v FROM pair WHERE x = 1 ORDER BY y', [['a'], ['b']]),
  q('SELECT v FROM pair WHERE x = 1 AND y = 2', [['b']]),
  q('SELECT v FROM pair WHERE x = 1 AND y > 1', [['b']]),
  q('SELECT x, y FROM pair ORDER BY x, y', [[-1, 5], [1, 1], [1, 2], [2, 1]]),
  q('SELECT x, y FROM pair ORDER BY x DESC, y DESC', [[2, 1], [1, 2], [1, 1], [-1, 5]]),
  q('SELECT x FROM pair WHERE x < 0', [[-1]]),
  q("SELECT id FROM uq WHERE email = 'b@x'", [[2]]),
  qu('SELECT id FROM uq WHERE email IS NULL', [[3], [4]]),
  qu('SELECT a, b FROM nokey', [[1, 'a'], [1, 'a'], [2, null]]),
  // expressions
  q('SELECT 1 + 2 * 3, 7 - 10, 2 * (3 + 4)', [[7, -3, 14]]),
  q('SELECT 7 % 3, -7 % 3, ABS(-5), ABS(2.5)', [[1, -1, 5, '2.5']]),
  q("SELECT UPPER('abc'), LOWER('ABC'), LENGTH('hello'), TRIM('  x  ')", [['ABC', 'abc', 5, 'x']]),
  q("SELECT SUBSTRING('database', 1, 4), SUBSTR('database', 5), REPLACE('a-b-c', '-', '+')", [['data', 'base', 'a+b+c']]),
  q('SELECT COALESCE(NULL, NULL, 3), COALESCE(NULL, 2), NULLIF(1, 1), NULLIF(1, 2)', [[3, 2, null, 1]]),
  q("SELECT CASE WHEN 1 > 2 THEN 'a' WHEN 2 > 1 THEN 'b' ELSE 'c' END, CASE 3 WHEN 1 THEN 'one' WHEN 3 THEN 'three' END, CASE 5 WHEN 1 THEN 'x' END", [['b', 'three', null]]),
  q("SELECT CAST('42' AS INT) + 1, CAST(3.7 AS INT), CAST(12 AS CHAR(5))", [[43, 4, '12']]),
  q('SELECT ROUND(2.567, 2), ROUND(2.5), FLOOR(2.7), CEIL(2.1)', [['2.57', '3', '2', '3']]),
  q('SELECT 1 = 1, 1 <> 1, 2 > 1, 2 >= 3, 1 < 2, 3 <= 3', [[true, false, true, false, true, true]]),
  q("SELECT 'abc' < 'abd', 'b' > 'abc', 'a' = 'a'", [[true, true, true]]),
  q('SELECT GREATEST(1, 5, 3), LEAST(4, 2, 8)', [[5, 2]]),
  q('SELECT 10.5 + 1, 0.1 + 0.2, 1.50 * 2', [['11.5', '0.3', '3.00']]),
  err('SELECT nosuchfunc(1)', '42883', /nosuchfunc/),
  err("SELECT CAST('x1' AS INT)", '22P02', /x1/),
  // three-valued logic
  q('SELECT NULL = NULL, NULL <> 1, NULL IS NULL, 1 IS NOT NULL', [[null, null, true, true]]),
  q('SELECT TRUE AND NULL, FALSE AND NULL, TRUE OR NULL, FALSE OR NULL, NOT NULL IS NULL', [[null, false, true, null, false]]),
  q('SELECT 1 IN (1, NULL), 2 IN (1, NULL), 2 NOT IN (1, NULL), NULL IN (1)', [[true, null, null, null]]),
  q('SELECT 5 BETWEEN 1 AND 10, 5 NOT BETWEEN 1 AND 10, NULL BETWEEN 1 AND 2', [[true, false, null]]),
  qu('SELECT id FROM emp WHERE dept = NULL', []),
  qu('SELECT id FROM emp WHERE dept IS NULL', [[4]]),
  qu('SELECT id FROM emp WHERE NOT (salary > 95)', [[3], [5], [6]]),
  qu('SELECT id FROM emp WHERE salary > 95 OR dept IS NULL', [[1], [2], [4]]),
  qu("SELECT id FROM emp WHERE dept <> 'eng'", [[3], [5], [6]]),
  qu('SELECT id FROM emp WHERE bonus IS NULL', [[2], [6]]),
  // LIKE, IN, BETWEEN on columns
  qu("SELECT name FROM emp WHERE name LIKE '%d%'", [['ada'], ['di'], ['ed']]),
  qu("SELECT name FROM emp WHERE name LIKE '_o_'", [['bob']]),
  qu("SELECT name FROM emp WHERE name NOT LIKE 'a%'", [['bob'], ['cy'], ['di'], ['ed'], ['flo']]),
  qu("SELECT name FROM emp WHERE dept IN ('ops', 'sales')", [['cy'], ['ed'], ['flo']]),
  qu("SELECT name FROM emp WHERE dept NOT IN ('ops', 'sales')", [['ada'], ['bob']]),
  qu('SELECT name FROM emp WHERE salary BETWEEN 90 AND 100', [['bob'], ['cy'], ['ed']]),
  // ORDER BY, LIMIT, OFFSET, DISTINCT
  q('SELECT name FROM emp WHERE salary IS NOT NULL ORDER BY salary DESC, name LIMIT 3', [['ada'], ['bob'], ['ed']]),
  q('SELECT name FROM emp ORDER BY id LIMIT 2 OFFSET 2', [['cy'], ['di']]),
  q('SELECT name FROM emp ORDER BY name DESC LIMIT 1', [['flo']]),
  q('SELECT id FROM emp ORDER BY id LIMIT 0', []),
  q('SELECT name AS n FROM emp ORDER BY n LIMIT 2', [['ada'], ['bob']]),
  q('SELECT name, salary FROM emp WHERE salary > 0 ORDER BY 2 DESC, 1 LIMIT 2', [['ada', 120], ['bob', 100]]),
  q('SELECT id FROM emp ORDER BY id DESC LIMIT 2', [[6], [5]]),
  q('SELECT DISTINCT dept FROM emp WHERE dept IS NOT NULL ORDER BY dept', [['eng'], ['ops'], ['sales']]),
  q('SELECT DISTINCT a, b FROM nokey ORDER BY a', [[1, 'a'], [2, null]]),
  q('SELECT salary * 2 AS dbl FROM emp WHERE id < 3 ORDER BY dbl', [[200], [240]]),
  // aggregates
  q('SELECT COUNT(*), COUNT(salary), COUNT(DISTINCT dept), SUM(salary), MIN(salary), MAX(name) FROM emp', [[6, 5, 3, 475, 70, 'flo']]),
  q('SELECT COUNT(*) FROM emp WHERE id > 100', [[0]]),
  q('SELECT SUM(salary), MAX(salary) FROM emp WHERE id > 100', [[null, null]]),
  q('SELECT dept, COUNT(*), SUM(salary) FROM emp WHERE dept IS NOT NULL GROUP BY dept ORDER BY dept', [['eng', 2, 220], ['ops', 2, 185], ['sales', 1, 70]]),
  q('SELECT dept, COUNT(*) AS n FROM emp GROUP BY dept HAVING COUNT(*) > 1 ORDER BY dept', [['eng', 2], ['ops', 2]]),
  q('SELECT dept, MAX(salary) - MIN(salary) FROM emp WHERE dept IS NOT NULL GROUP BY dept ORDER BY 2 DESC, 1', [['eng', 20], ['ops', 5], ['sales', 0]]),
  q('SELECT SUM(bonus) FROM emp', [['16.75']]),
  q('SELECT COUNT(*) FROM nokey GROUP BY a ORDER BY a', [[2], [1]]),
  q('SELECT x, COUNT(*) FROM pair GROUP BY x ORDER BY x', [[-1, 1], [1, 2], [2, 1]]),
  err('SELECT dept, name FROM emp GROUP BY dept', '42803', /name/),
  err('SELECT SUM(SUM(salary)) FROM emp', '42803'),
  // joins
  q('SELECT e.name, d.title FROM emp e JOIN dept d ON e.dept = d.code ORDER BY e.id', [['ada', 'Engineering'], ['bob', 'Engineering'], ['cy', 'Operations'], ['ed', 'Operations']]),
  q('SELECT e.name, d.title FROM emp e LEFT JOIN dept d ON e.dept = d.code ORDER BY e.id', [['ada', 'Engineering'], ['bob', 'Engineering'], ['cy', 'Operations'], ['di', null], ['ed', 'Operations'], ['flo', null]]),
  q('SELECT d.code, COUNT(e.id) FROM dept d LEFT JOIN emp e ON e.dept = d.code GROUP BY d.code ORDER BY d.code', [['eng', 2], ['hr', 0], ['ops', 2]]),
  q('SELECT e.name FROM emp e INNER JOIN dept d ON e.dept = d.code AND d.floor > 1 ORDER BY e.name', [['ada'], ['bob']]),
  q('SELECT e.name, d.floor FROM emp e, dept d WHERE e.dept = d.code AND d.floor = 1 ORDER BY e.name', [['cy', 1], ['ed', 1]]),
  q('SELECT a.name, b.name FROM emp a JOIN emp b ON a.salary < b.salary WHERE b.id = 1 ORDER BY a.name', [['bob'], ['cy'], ['ed'], ['flo']].map(([n]) => [n, 'ada'])),
  q('SELECT e.name FROM emp e LEFT JOIN dept d ON e.dept = d.code WHERE d.code IS NULL ORDER BY e.name', [['di'], ['flo']]),
  err('SELECT id FROM emp a JOIN emp b ON a.id = b.id', '42702', /id/),
  err('SELECT name FROM emp, emp', '42710'),
  err('SELECT zz.name FROM emp', '42P01', /zz/),
  // subqueries and CTEs
  qu('SELECT name FROM emp WHERE dept IN (SELECT code FROM dept WHERE floor >= 2)', [['ada'], ['bob']]),
  qu('SELECT name FROM emp WHERE dept NOT IN (SELECT code FROM dept)', [['flo']]),
  qu('SELECT code FROM dept d WHERE EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.code)', [['eng'], ['ops']]),
  qu('SELECT code FROM dept d WHERE NOT EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.code)', [['hr']]),
  q('SELECT name FROM emp WHERE salary = (SELECT MAX(salary) FROM emp)', [['ada']]),
  q('SELECT name, (SELECT title FROM dept WHERE code = emp.dept) FROM emp WHERE id <= 2 ORDER BY id', [['ada', 'Engineering'], ['bob', 'Engineering']]),
  err('SELECT (SELECT id FROM emp)', '21000'),
  q('WITH rich AS (SELECT id, name FROM emp WHERE salary >= 100) SELECT name FROM rich ORDER BY id', [['ada'], ['bob']]),
  q('WITH d AS (SELECT dept, COUNT(*) AS n FROM emp GROUP BY dept) SELECT MAX(n) FROM d', [[2]]),
  q('SELECT t.n FROM (SELECT name AS n, salary FROM emp) t WHERE t.salary < 80', [['flo']]),
  // UPDATE and DELETE
  ok('UPDATE emp SET salary = salary + 5 WHERE id = 6', 1),
  q('SELECT salary FROM emp WHERE id = 6', [[75]]),
  ok("UPDATE emp SET bonus = 1 WHERE dept = 'ops'", 2),
  ok('UPDATE emp SET salary = 0 WHERE id = 99', 0),
  ok("UPDATE emp SET dept = 'eng', salary = salary * 2 WHERE salary < 80", 1),
  q("SELECT name, salary FROM emp WHERE dept = 'eng' ORDER BY name", [['ada', 120], ['bob', 100], ['flo', 150]]),
  err('UPDATE emp SET name = NULL WHERE id = 1', '23502'),
  err('UPDATE emp SET id = 2 WHERE id = 1', '23505'),
  ok('UPDATE emp SET id = 60 WHERE id = 6', 1),
  q('SELECT name FROM emp WHERE id = 60', [['flo']]),
  q('SELECT COUNT(*) FROM emp WHERE id = 6', [[0]]),
  err("UPDATE uq SET email = 'a@x' WHERE id = 2", '23505', /email/),
  ok("UPDATE uq SET email = 'c@x' WHERE id = 3", 1),
  q("SELECT id FROM uq WHERE email = 'c@x'", [[3]]),
  ok("UPDATE uq SET email = 'b@x' WHERE id = 2", 1),
  err('UPDATE emp SET nope = 1', '42703'),
  ok('DELETE FROM nokey WHERE a = 1', 2),
  qu('SELECT a FROM nokey', [[2]]),
  ok('DELETE FROM pair WHERE x = 1 AND y = 1', 1),
  ok('DELETE FROM pair WHERE x > 100', 0),
  ok('DELETE FROM uq WHERE id = 1', 1),
  ok("INSERT INTO uq VALUES (5, 'a@x', 5)", 1),
  ok('DELETE FROM uq', 4),
  q('SELECT COUNT(*) FROM uq', [[0]]),
  // INSERT ... SELECT
  ok('CREATE TABLE emp2 (id INT PRIMARY KEY, name TEXT)'),
  ok('INSERT INTO emp2 SELECT id, name FROM emp WHERE salary >= 100', 3),
  q('SELECT name FROM emp2 ORDER BY id', [['ada'], ['bob'], ['flo']]),
  err('INSERT INTO emp2 SELECT id, name FROM emp WHERE id = 1', '23505'),
  // indexes
  ok('CREATE INDEX emp_salary ON emp (salary)'),
  err('CREATE INDEX emp_salary ON emp (name)', '42P07'),
  ...(d === 'postgres' ? [ok('CREATE INDEX IF NOT EXISTS emp_salary ON emp (name)')] : []),
  q('SELECT name FROM emp WHERE salary = 100', [['bob']]),
  q('SELECT name FROM emp WHERE salary > 95 ORDER BY salary', [['bob'], ['ada'], ['flo']]),
  q('SELECT name FROM emp WHERE salary >= 90 AND salary < 100 ORDER BY name', [['cy'], ['ed']]),
  ok('UPDATE emp SET salary = 101 WHERE id = 2', 1),
  q('SELECT name FROM emp WHERE salary = 100', []),
  q('SELECT name FROM emp WHERE salary = 101', [['bob']]),
  ok('CREATE UNIQUE INDEX emp_name ON emp (name)'),
  err("INSERT INTO emp (id, name) VALUES (70, 'ada')", '23505', /emp_name/),
  ok("INSERT INTO emp (id, name, salary) VALUES (70, 'gus', 101)", 1),
  qu('SELECT name FROM emp WHERE salary = 101', [['bob'], ['gus']]),
  ok('DELETE FROM emp WHERE id = 70', 1),
  q('SELECT name FROM emp WHERE salary = 101', [['bob']]),
  q("SELECT id FROM emp WHERE name = 'ed'", [[5]]),
  ok('CREATE TABLE dupes (a INT, b INT)'),
  ok('INSERT INTO dupes VALUES (1, 1), (1, 2)', 2),
  err('CREATE UNIQUE INDEX dupes_a ON dupes (a)', '23505'),
  ok(d === 'postgres' ? 'DROP INDEX emp_name' : 'DROP INDEX emp_name ON emp'),
  err(d === 'postgres' ? 'DROP INDEX emp_name' : 'DROP INDEX emp_name ON emp', '42704'),
  ...(d === 'postgres' ? [ok('DROP INDEX IF EXISTS emp_name')] : []),
  ok("INSERT INTO emp (id, name) VALUES (71, 'ada')", 1),
  // ALTER TABLE ADD COLUMN
  ok('ALTER TABLE dept ADD COLUMN budget INT DEFAULT 7'),
  q('SELECT code, budget FROM dept ORDER BY code', [['eng', 7], ['hr', 7], ['ops', 7]]),
  ok("INSERT INTO dept (code, title, floor, budget) VALUES ('it', 'IT', 4, 99)", 1),
  q("SELECT budget FROM dept WHERE code = 'it'", [[99]]),
  ok('ALTER TABLE dept ADD COLUMN note TEXT'),
  q("SELECT note FROM dept WHERE code = 'eng'", [[null]]),
  err('ALTER TABLE dept ADD COLUMN must INT NOT NULL', '23502'),
  err('ALTER TABLE dept ADD COLUMN note TEXT', '42701'),
  err('ALTER TABLE nosuch ADD COLUMN z INT', '42P01'),
  // DROP TABLE
  ok('DROP TABLE emp2'),
  err('SELECT * FROM emp2', '42P01'),
  err('DROP TABLE emp2', '42P01'),
  ok('DROP TABLE IF EXISTS emp2'),
  ok('CREATE TABLE emp2 (k INT PRIMARY KEY)'),
  q('SELECT COUNT(*) FROM emp2', [[0]]),
  // syntax errors and unsupported constructs
  err('SELEKT 1', '42601'),
  err('SELECT FROM WHERE', '42601'),
  q('SELECT dept FROM emp WHERE id < 3 UNION SELECT code FROM dept ORDER BY 1', [['eng'], ['hr'], ['it'], ['ops']]),
  q('SELECT dept FROM emp WHERE id < 3 UNION ALL SELECT code FROM dept WHERE floor = 1 ORDER BY dept', [['eng'], ['eng'], ['ops']]),
  q('SELECT name, salary FROM emp WHERE id = 1 UNION ALL SELECT name, salary FROM emp WHERE id = 1 UNION SELECT name, salary FROM emp WHERE id = 2 ORDER BY 2 DESC LIMIT 5', [['ada', 120], ['bob', 101]]),
  q('WITH x AS (SELECT 1 AS n) SELECT n FROM x UNION ALL SELECT n + 1 FROM x', [[1], [2]]),
  qu('SELECT code FROM dept WHERE code IN (SELECT dept FROM emp UNION SELECT \'hr\')', [['eng'], ['hr'], ['ops']]),
  err('SELECT id FROM emp UNION SELECT id, name FROM emp', '42601', /same number of columns/),
  err('SELECT id FROM emp INTERSECT SELECT id FROM emp', '0A000', /INTERSECT/i),
  err('SELECT COUNT(*) OVER () FROM emp', '0A000'),
  q('SELECT 1', [[1]]),
]

const postgresOnly: Case[] = [
  ok('CREATE TABLE kv (k TEXT PRIMARY KEY, v INT NOT NULL, note TEXT)'),
  ok('INSERT INTO kv VALUES ($1, $2, $3)', 1, ['a', 1, 'x']),
  ok('INSERT INTO kv (k, v) VALUES ($1, $2), ($3, $4)', 2, ['b', 2, 'c', 3]),
  q('SELECT v FROM kv WHERE k = $1', [[2]], ['b']),
  q('SELECT k FROM kv WHERE v > $1 ORDER BY k', [['b'], ['c']], [1]),
  q('SELECT $2::int + $1::int', [[5]], [2, 3]),
  q("SELECT '5'::int * 2, 'abc' || 'def', 'x' || NULL, 1::text || 2", [[10, 'abcdef', null, '12']]),
  err('SELECT 1 / 0', '22012'),
  q('SELECT 7 / 2, -7 / 2, 7.0 / 2, 7 / 2.0', [[3, -3, '3.5000000000000000', '3.5000000000000000']]),
  q("SELECT CONCAT('a', NULL, 'b')", [['ab']]),
  q("SELECT 'A' ILIKE 'a', 'abc' ILIKE 'A%', 'abc' LIKE 'A%'", [[true, true, false]]),
  q('SELECT k FROM kv ORDER BY note NULLS FIRST, k', [['b'], ['c'], ['a']]),
  q('SELECT k FROM kv ORDER BY note, k', [['a'], ['b'], ['c']]),
  q('SELECT k FROM kv ORDER BY note DESC, k', [['b'], ['c'], ['a']]),
  q('INSERT INTO kv VALUES ($1, $2) RETURNING k, v * 10 AS ten', [['d', 40]], ['d', 4]),
  q("INSERT INTO kv VALUES ('a', 100) ON CONFLICT (k) DO UPDATE SET v = kv.v + excluded.v RETURNING v", [[101]]),
  q("INSERT INTO kv VALUES ('a', 5) ON CONFLICT DO NOTHING RETURNING v", []),
  ok("INSERT INTO kv VALUES ('a', 5), ('e', 5) ON CONFLICT (k) DO NOTHING", 1),
  q("INSERT INTO kv VALUES ('e', 6) ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE kv.v > 100 RETURNING v", []),
  err("INSERT INTO kv VALUES ('a', 5) ON CONFLICT (v) DO NOTHING", '42P10'),
  q('UPDATE kv SET v = v + 1 WHERE k = $1 RETURNING k, v', [['b', 3]], ['b']),
  q("DELETE FROM kv WHERE k IN ('c', 'd') RETURNING k", [['c'], ['d']]),
  q('SELECT k, v FROM kv ORDER BY k', [['a', 101], ['b', 3], ['e', 5]]),
  err('SELECT v FROM kv WHERE k = $1', '08P01', /\$1/),
  q('SELECT COUNT(*) FROM kv WHERE k = $1 OR k = $2', [[2]], ['a', 'e']),
  err('SELECT k FROM kv WHERE k = nosuchcol', '42703', /nosuchcol/),
  // types: round trips
  ok('CREATE TABLE ty (id BIGINT PRIMARY KEY, f DOUBLE PRECISION, n NUMERIC(20,5), b BOOLEAN, bin BYTEA, ts TIMESTAMP, d DATE, j JSONB, vc VARCHAR(3))'),
  ok('INSERT INTO ty VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', 1, [9007199254740993n, 0.1, '12345.67891', true, Buffer.from([0, 1, 255]), new Date('2024-02-29T12:34:56.789Z'), '2024-02-29', { a: [1, 'x', null] }, 'abc']),
  q('SELECT id, f, n, b, bin, ts, d, j, vc FROM ty', [[9007199254740993n, 0.1, '12345.67891', true, Buffer.from([0, 1, 255]), new Date('2024-02-29T12:34:56.789Z'), '2024-02-29', { a: [1, 'x', null] }, 'abc']]),
  q('SELECT id FROM ty WHERE id = $1', [[9007199254740993n]], [9007199254740993n]),
  q("SELECT id + 1, n * 2, j->'a', j->>'a' FROM ty", [[9007199254740994n, '24691.35782', [1, 'x', null], '[1,"x",null]']]),
  ok("INSERT INTO ty (id, ts, d, bin, j) VALUES (-5, '2000-01-01 00:00:00', '1999-12-31', '\\x00ff', '[1,2]')", 1),
  q('SELECT ts, d, bin, j FROM ty WHERE id = -5', [[new Date('2000-01-01T00:00:00Z'), '1999-12-31', Buffer.from([0, 255]), [1, 2]]]),
  err("INSERT INTO ty (id, j) VALUES (6, '{bad')", '22P02', /json/),
  err("INSERT INTO ty (id, d) VALUES (7, '2024-13-01')", '22P02', /date/),
  err("INSERT INTO ty (id, vc) VALUES (8, 'abcd')", '22001'),
  err("INSERT INTO ty (id, b) VALUES (9, 'maybe')", '22P02', /boolean/),
  q('SELECT id FROM ty ORDER BY id', [[-5], [9007199254740993n]]),
  q("SELECT DATE '2020-01-02', CAST('2020-01-02 03:04:05' AS TIMESTAMP)", [['2020-01-02', new Date('2020-01-02T03:04:05Z')]]),
  // EXPLAIN shows the chosen access path
  q('EXPLAIN SELECT v FROM kv WHERE k = $1', [['Filter'], ['  -> Point Get on kv using primary key (k) (k = ?)']], ['a']),
  q('EXPLAIN SELECT v FROM kv', [['Full Scan on kv']]),
  q('EXPLAIN SELECT v FROM kv ORDER BY k LIMIT 1', [['Limit'], ['  -> Primary Key Scan on kv using primary key (k)']]),
  q('EXPLAIN SELECT v FROM kv WHERE k > $1', [['Filter'], ['  -> Primary Key Range Scan on kv using primary key (k) (k > ?)']], ['a']),
  q('SELECT k FROM kv WHERE k = $1 FOR UPDATE', [['a']], ['a']),
  // serial, INSERT ... SELECT ... ON CONFLICT, subqueries in DML
  ok('CREATE TABLE ser (id SERIAL PRIMARY KEY, v TEXT)'),
  q("INSERT INTO ser (v) VALUES ('a'), ('b') RETURNING id", [[1], [2]]),
  q("INSERT INTO ser (id, v) VALUES (10, 'c') RETURNING id", [[10]]),
  q("INSERT INTO ser (v) VALUES ('d') RETURNING id, v", [[3, 'd']]),
  ok('INSERT INTO kv SELECT v, id, NULL FROM ser WHERE id < 3 ON CONFLICT (k) DO NOTHING', 0),
  ok("INSERT INTO kv SELECT v || '2', id FROM ser WHERE id < 3 ON CONFLICT (k) DO UPDATE SET v = excluded.v + 100", 2),
  q("SELECT k, v FROM kv WHERE k LIKE '%2' ORDER BY k", [['a2', 1], ['b2', 2]]),
  ok("INSERT INTO kv SELECT v || '2', id FROM ser WHERE id < 3 ON CONFLICT (k) DO UPDATE SET v = excluded.v + 100", 2),
  q("SELECT k, v FROM kv WHERE k LIKE '%2' ORDER BY k", [['a2', 101], ['b2', 102]]),
  ok("UPDATE kv SET note = 'sub' WHERE k IN (SELECT v FROM ser WHERE id <= 2)", 2),
  q("SELECT k FROM kv WHERE note = 'sub' ORDER BY k", [['a'], ['b']]),
  ok('DELETE FROM kv WHERE EXISTS (SELECT 1 FROM ser WHERE ser.v || \'2\' = kv.k)', 2),
  q("SELECT COUNT(*) FROM kv WHERE k LIKE '%2'", [[0]]),
  q("INSERT INTO kv VALUES ('max', (SELECT MAX(id) FROM ser)) RETURNING v", [[10]]),
  q('SELECT 3000000000 + 1, -2147483648', [[3000000001, -2147483648]]),
  q("SELECT id FROM ser WHERE id NOT IN (SELECT id FROM ser WHERE v < 'c') ORDER BY id", [[3], [10]]),
  // what pgbench -i sends: storage parameters, TRUNCATE, generate_series, VACUUM, primary keys added after loading
  ok('CREATE TABLE acc (aid INT NOT NULL, bid INT, abalance INT, filler CHAR(84)) WITH (fillfactor=100)'),
  ok('TRUNCATE TABLE acc'),
  ok("INSERT INTO acc (aid, bid, abalance, filler) SELECT aid, (aid - 1) / 10 + 1, 0, '' FROM generate_series(1, 30) AS aid", 30),
  ok('CREATE INDEX acc_bid ON acc (bid)'),
  ok('VACUUM ANALYZE acc'),
  err('VACUUM nosuch', '42P01'),
  q('EXPLAIN SELECT abalance FROM acc WHERE aid = 7', [['Filter'], ['  -> Full Scan on acc']]),
  ok('ALTER TABLE acc ADD PRIMARY KEY (aid)'),
  q('EXPLAIN SELECT abalance FROM acc WHERE aid = 7', [['Filter'], ['  -> Point Get on acc using primary key (aid) (aid = ?)']]),
  err('ALTER TABLE acc ADD PRIMARY KEY (bid)', '42P10'),
  ok('UPDATE acc SET abalance = abalance + -4134 WHERE aid = 7', 1),
  q('SELECT aid, bid, abalance FROM acc WHERE aid = 7', [[7, 1, -4134]]),
  q('SELECT COUNT(*) FROM acc WHERE bid = 3', [[10]]),
  err('INSERT INTO acc (aid) VALUES (7)', '23505', /acc_pkey/),
  ok('CREATE TABLE dup (a INT, b INT)'),
  ok('INSERT INTO dup VALUES (1, 1), (1, 2), (NULL, 3)', 3),
  err('ALTER TABLE dup ADD PRIMARY KEY (a)', '23502'),
  ok('DELETE FROM dup WHERE a IS NULL', 1),
  err('ALTER TABLE dup ADD PRIMARY KEY (a)', '23505'),
  ok('ALTER TABLE dup ADD PRIMARY KEY (a, b)'),
  ok('ALTER TABLE dup ADD CONSTRAINT dup_b UNIQUE (b)'),
  err('INSERT INTO dup VALUES (5, 2)', '23505', /dup_b/),
  ok('TRUNCATE acc, dup'),
  q('SELECT (SELECT COUNT(*) FROM acc), (SELECT COUNT(*) FROM dup)', [[0, 0]]),
  q('SELECT COUNT(*) FROM acc WHERE bid = 3', [[0]]),
  q('SELECT g * 2 FROM generate_series(1, 7, 3) g', [[2], [8], [14]]),
  // doubles: -0, NaN and infinities round-trip; an untyped literal compares as the column's type
  ok('CREATE TABLE fl (id INT PRIMARY KEY, x DOUBLE PRECISION, d DATE)'),
  ok('INSERT INTO fl VALUES ($1, $2, $3), ($4, $5, $6), ($7, $8, $9)', 3, [1, -0, '2020-01-01', 2, NaN, '2021-06-30', 3, -Infinity, null]),
  q('SELECT id, x FROM fl ORDER BY x', [[3, -Infinity], [1, -0], [2, NaN]]),
  q("SELECT id FROM fl WHERE x = 'NaN'", [[2]]),
  q("SELECT id FROM fl WHERE x < '-1e308'", [[3]]),
  q("SELECT id FROM fl WHERE d BETWEEN '2020-01-01' AND '2020-12-31'", [[1]]),
  q("SELECT id FROM fl WHERE d IN ('2021-06-30', '1999-01-01')", [[2]]),
  err("SELECT id FROM fl WHERE d = 'yesterday-ish'", '22P02', /date/),
  // LIKE escapes, collations, joins that are refused rather than guessed
  q("SELECT 'a%' LIKE 'a!%' ESCAPE '!', 'ab' LIKE 'a!%' ESCAPE '!', 'a_' LIKE 'a\\_', 'ab' LIKE 'a\\_'", [[true, false, true, false]]),
  q('SELECT k FROM kv WHERE k COLLATE "C" > \'a\' ORDER BY k COLLATE "C" LIMIT 1', [['b']]),
  err('SELECT k FROM kv ORDER BY k COLLATE "de_DE"', '0A000', /COLLATE/),
  err('SELECT * FROM kv NATURAL JOIN ser', '0A000', /NATURAL/),
  err('SELECT * FROM kv RIGHT JOIN ser ON kv.v = ser.id', '0A000', /RIGHT/),
  err('SELECT * FROM kv FULL JOIN ser ON kv.v = ser.id', '0A000', /FULL/),
  err('SELECT * FROM kv JOIN ser USING (id)', '0A000', /USING/),
  err('SELECT row_number() OVER () FROM kv', '0A000', /window/),
]

const mysqlOnly: Case[] = [
  ok('CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INT NOT NULL, note TEXT)'),
  ok('INSERT INTO kv VALUES (?, ?, ?)', 1, ['a', 1, 'x']),
  ok('INSERT INTO kv (k, v) VALUES (?, ?), (?, ?)', 2, ['b', 2, 'c', 3]),
  q('SELECT v FROM kv WHERE k = ?', [[2]], ['b']),
  q('SELECT `k` FROM kv WHERE v > ? ORDER BY `k`', [['b'], ['c']], [1]),
  q("SELECT \"dq\", 'sq'", [['dq', 'sq']]),
  q('SELECT 7 / 2, 7 DIV 2, 7 MOD 2', [['3.5000', 7 >> 1, 1]]),
  q('SELECT 1 / 0', [[null]]),
  q("SELECT CONCAT('a', NULL, 'b'), CONCAT('a', 'b'), IFNULL(NULL, 'z'), IF(1 > 2, 'y', 'n')", [[null, 'ab', 'z', 'n']]),
  q('SELECT k FROM kv ORDER BY note, k', [['b'], ['c'], ['a']]),
  q('SELECT k FROM kv ORDER BY note DESC, k', [['a'], ['b'], ['c']]),
  ok("INSERT INTO kv VALUES ('a', 100, NULL) ON DUPLICATE KEY UPDATE v = v + VALUES(v)", 2),
  q("SELECT v FROM kv WHERE k = 'a'", [[101]]),
  ok("INSERT INTO kv (k, v) VALUES ('d', 4) ON DUPLICATE KEY UPDATE v = 0", 1),
  q('SELECT k, v FROM kv ORDER BY k LIMIT 1, 2', [['b', 2], ['c', 3]]),
  err("INSERT INTO kv VALUES ('a', 1, NULL)", '23505'),
  q('SELECT COUNT(*) FROM kv WHERE k IN (?, ?)', [[1]], ['a', 'zz']),
  ok('CREATE TABLE ty (id BIGINT PRIMARY KEY, f DOUBLE, n DECIMAL(12,3), b BOOLEAN, bl BLOB, ts DATETIME, d DATE, j JSON)'),
  ok('INSERT INTO ty VALUES (?, ?, ?, ?, ?, ?, ?, ?)', 1, [-9007199254740993n, -2.5e-300, '-123456789.125', false, Buffer.from('\u0000bin'), new Date('1970-01-01T00:00:00.001Z'), '1970-01-01', [true, { k: 'v' }]]),
  q('SELECT * FROM ty', [[-9007199254740993n, -2.5e-300, '-123456789.125', false, Buffer.from('\u0000bin'), new Date('1970-01-01T00:00:00.001Z'), '1970-01-01', [true, { k: 'v' }]]]),
  q('EXPLAIN SELECT v FROM kv WHERE k = ?', [['Filter'], ['  -> Point Get on kv using primary key (k) (k = ?)']], ['a']),
  ok('CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)'),
  ok("INSERT INTO ai (v) VALUES ('a'), ('b')", 2),
  ok("INSERT INTO ai (id, v) VALUES (NULL, 'c')", 1),
  q('SELECT id, v FROM ai ORDER BY id', [[1, 'a'], [2, 'b'], [3, 'c']]),
  ok("UPDATE kv SET note = 'sub' WHERE k IN (SELECT v FROM ai WHERE id <= 2)", 2),
  q("SELECT k FROM kv WHERE note = 'sub' ORDER BY k", [['a'], ['b']]),
  ok('TRUNCATE TABLE ai'),
  q('SELECT COUNT(*) FROM ai', [[0]]),
]

async function runDialect(dialect: 'postgres' | 'mysql', extra: Case[]): Promise<number> {
  return withSql(`sql-conf-${dialect}`, async (cluster, dir) => {
    const db = cluster.writer
    const s = db.session({ dialect })
    let n = await runCases(s, shared(dialect), dialect)
    n += await runCases(s, extra, dialect)
    await s.close()
    // the catalog and the data survive a restart
    await cluster.close()
    const again = await openCluster({ ...kvOptions(dir), dialect })
    try {
      n += await runCases(again.writer, [
        q('SELECT name FROM emp WHERE id = 3', [['cy']]),
        q("SELECT code, budget FROM dept WHERE code = 'it'", [['it', 99]]),
        q('SELECT name FROM emp WHERE salary = 101', [['bob']]),
        err('SELECT * FROM emp2x', '42P01'),
        ok("INSERT INTO emp2 VALUES (1)", 1),
        q('SELECT COUNT(*) FROM emp2', [[1]]),
      ], `${dialect} after restart`)
    } finally {
      await again.close()
    }
    return n
  })
}

test('conformance: shared statements and PostgreSQL syntax, in the postgres dialect', async () => {
  const n = await runDialect('postgres', postgresOnly)
  console.log(`  postgres: ${n} statements checked`)
  assert.ok(n > 200, `ran ${n} statements`)
})

test('conformance: shared statements and MySQL syntax, in the mysql dialect', async () => {
  const n = await runDialect('mysql', mysqlOnly)
  console.log(`  mysql: ${n} statements checked`)
  assert.ok(n > 200, `ran ${n} statements`)
})

test.run()
