// The filter rule of api.md section 4, checked as the user types. The API checks the
// same rule itself; this only says it sooner, next to the field.

export const CRITERIA = ["cli", "cld", "tags_list"];

// rows: [{type: "and"|"or", criterion, match, value}] -> [{index, field, message}]
export function checkFilters(rows) {
  const problems = [];
  let seenOr = false;
  rows.forEach((row, index) => {
    if (index === 0 && row.type !== "and") {
      problems.push({ index, field: "type", message: "The first filter must be 'and'." });
    } else if (row.type === "and" && seenOr) {
      problems.push({
        index,
        field: "type",
        message: "An 'and' may not follow an 'or': make this 'or', or move it above the 'or' filters.",
      });
    }
    seenOr = seenOr || row.type === "or";
    if (row.criterion === "tags_list") {
      if (!tagsOf(row.value).length) {
        problems.push({ index, field: "value", message: "Enter one or more tags, comma-separated." });
      }
    } else if (!row.value.replace(/^\+/, "")) {
      problems.push({ index, field: "value", message: "Enter a number or sender id to match." });
    }
  });
  return problems;
}

// Which join types a row may take given the rows before it.
export function allowedTypes(rows, index) {
  if (index === 0) return ["and"];
  return rows.slice(0, index).some((row) => row.type === "or") ? ["or"] : ["and", "or"];
}

export function tagsOf(text) {
  return text.split(",").map((tag) => tag.trim()).filter(Boolean);
}

// The API's filter objects for valid rows.
export function toApi(rows) {
  return rows.map((row) => {
    if (row.criterion === "tags_list") {
      return { filter_type: row.type, tags_list: tagsOf(row.value) };
    }
    return {
      filter_type: row.type,
      [row.criterion]: row.value.trim(),
      [`${row.criterion}_filter`]: row.match,
    };
  });
}
